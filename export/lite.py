"""Tracing a function for the TFLite converter: the scan engine's TensorList-free form, weights
folded into constants, builtin ops only (so the LiteRT interpreter runs it without Flex)."""

import contextlib

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from kzoo import quiet
from kzoo.choices import QUANTIZE_MODES
from kzoo.export import compact
from kzoo.layers.target import trace_target


def convert(fn, input_signature, allow_flex=False, optimizations=None):
    """TFLite flatbuffer bytes of ``fn`` traced with ``input_signature`` (dynamic dims as None).

    The function is traced for the ``"tflite"`` target (:func:`kzoo.layers.trace_target`);
    variables become constants because LiteRT cannot read resource variables inside a ``WHILE``
    body.
    """
    with trace_target("tflite"):
        concrete = tf.function(fn).get_concrete_function(*input_signature)
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_flex:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if optimizations:
        converter.optimizations = list(optimizations)
    return converter.convert()


def run(model_content, *inputs):
    """Run a converted model once in the LiteRT interpreter (inputs resized to their shapes)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    details = interpreter.get_input_details()
    for detail, value in zip(details, inputs):
        interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    for detail, value in zip(details, inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def op_names(model_content):
    """The set of op names in every subgraph of a converted model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    names = {d["op_name"] for d in interpreter._get_ops_details()}
    return names


def weight_bytes(model_content):
    """Bytes of constant tensor data in a converted model: its weights (int8 after dynamic
    quantization). The rest of the file is the graph (ops, tensors, the subgraphs of the loops
    and of each signature) and the quantization parameters."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_content, 0)
    total = 0
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        # A file over 2 GB keeps buffers after the flatbuffer (offset and size), not inline.
        total += buffer.DataLength() + (buffer.Size() if buffer.Offset() > 1 else 0)
    return total


# -- several named signatures in one file, post-training quantization ----------------------------


class FlexOpsNeeded(ValueError):
    """Raised when a model needs TensorFlow (Flex) ops that LiteRT's builtin op set lacks.

    ``kzoo.export.tflite`` and ``tflite_files`` raise it (unless ``allow_flex=True``) when the
    converter cannot lower an op to a builtin, for example the ``TensorListReserve`` of a
    ``keras.layers.LSTM`` loop. The plain LiteRT interpreter refuses such ops; an app linked
    with the Flex delegate runs them. A ``ValueError``, so code that catches bad input catches
    it too.

    Args:
        ops: the TensorFlow op names the converter complained about (a list of str, such as
            ``["TensorListReserve"]``; empty when it named none). Kept as ``error.ops``.
        detail: the converter's own message (its first error line). Kept as ``error.detail``.
        where: the function the message starts with (default ``"TFLite conversion"``).

    Example:

    ```python
    import keras
    import kzoo.export

    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(4)(inputs)))
    try:
        kzoo.export.tflite(model, "keras_lstm.tflite")
    except kzoo.export.FlexOpsNeeded as error:
        print(error.ops)            # ['TensorListReserve']
    ```
    """

    def __init__(self, ops, detail, where="TFLite conversion"):
        self.ops = ops
        self.detail = detail
        names = ", ".join(ops) if ops else "(not named by the converter)"
        super().__init__(
            f"{where}: this model would need Flex (Select TF) op(s) {names}, which the LiteRT "
            f"interpreter only runs when linked with the Flex delegate; export with "
            f"allow_flex=True to accept that. Converter said: {detail}")


def flex_ops_in(message):
    """The TensorFlow op names (``TensorListReserve``...) a converter error complains about."""
    import re

    names = re.findall(r"'tf\.(\w+)' op", message)
    names += re.findall(r"\btf\.([A-Z]\w+)", message)
    names += re.findall(r"\bFlex([A-Z]\w+)", message)
    return sorted(set(names))


def freeze_signature(fn, input_signature, variables=(), target="tflite"):
    """A ``ConcreteFunction`` of ``fn`` traced for the TFLite ``target`` (``"tflite"`` or
    ``"tflite_int8"``, see :func:`kzoo.layers.trace_target`) with its variables folded into
    constants, that keeps ``fn``'s argument names and named (dict) outputs.

    ``variables`` (Keras variables ``fn`` reads) are traced as constants at every place they
    are read, inside loop bodies too: frozen afterwards, a weight read inside a ``WHILE`` body
    would enter it as a loop input, which post-training quantization leaves in float32.
    """
    import inspect

    traced = fn
    if variables:
        from keras.src.backend.common.stateless_scope import StatelessScope

        values = {id(v): v.numpy() for v in variables}

        def traced(*args):
            # NumPy values (not tensors, which StatelessScope would make once, outside the
            # loops) become a constant in whichever graph reads them.
            scope = StatelessScope()
            scope.state_mapping = dict(values)
            with scope:
                return fn(*args)

    with trace_target(target):
        concrete = tf.function(traced, autograph=False).get_concrete_function(*input_signature)
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    def named(*args):
        # Freezing flattens the outputs; pack them back so the signature keeps their names.
        return tf.nest.pack_sequence_as(structure, frozen(*args))

    named.__signature__ = inspect.signature(fn)
    return tf.function(named, input_signature=list(input_signature),
                       autograph=False).get_concrete_function()


def convert_signatures(functions, allow_flex=False, quantize=None, representative_dataset=None,
                       variables=()):
    """TFLite flatbuffer bytes holding every ``{signature_name: (fn, input_signature)}``.

    Each ``fn`` is frozen with :func:`freeze_signature`; the frozen functions go through a
    variable-free SavedModel in a temporary directory, which is how the converter takes several
    named signatures. ``quantize``: None, "dynamic" (int8 weights), "float16" (float16 weights,
    for GPU delegates) or "int8" (weights and activations, calibrated on
    ``representative_dataset``, a callable yielding ``(signature_name, {input: array})``).
    ``variables``: the Keras variables the functions read (see :func:`freeze_signature`).
    Raises :class:`FlexOpsNeeded` naming the ops when builtins do not suffice.
    """
    return convert_variants(functions, [quantize], allow_flex, representative_dataset,
                            variables)[quantize]


def convert_variants(functions, modes, allow_flex=False, representative_dataset=None,
                     variables=()):
    """``{mode: bytes}``: :func:`convert_signatures` for each quantize mode of ``modes``, from one
    trace and one SavedModel, since tracing and saving are a large part of a conversion (see
    docs/export.md); int8 files take a trace of their own in the engine's calibration-safe
    form."""
    for mode in modes:
        if mode not in QUANTIZE_MODES:
            raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {mode!r}")
    contents = {}
    # TensorFlow's int8 calibrator crashes running the engine's fast loops: int8 files are
    # traced for the "tflite_int8" target, whose loops it runs.
    for target in ("tflite", "tflite_int8"):
        group = [mode for mode in dict.fromkeys(modes)
                 if (mode == "int8") == (target == "tflite_int8")]
        if group:
            with quiet.exporting(), \
                    _saved_signatures(functions, variables, target) as directory:
                for mode in group:
                    contents[mode] = _convert_saved(directory, list(functions), allow_flex,
                                                    mode, representative_dataset)
    return contents


@contextlib.contextmanager
def _saved_signatures(functions, variables, target):
    """A temporary SavedModel directory of the functions frozen for ``target`` (removed on
    exit)."""
    import shutil
    import tempfile

    frozen = {name: freeze_signature(fn, specs, variables, target)
              for name, (fn, specs) in functions.items()}
    directory = tempfile.mkdtemp(prefix="kzoo-tflite-")
    try:
        tf.saved_model.save(tf.Module(), directory, signatures=frozen)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _convert_saved(directory, signature_keys, allow_flex, quantize, representative_dataset):
    converter = tf.lite.TFLiteConverter.from_saved_model(directory, signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_flex:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        converter._experimental_lower_tensor_list_ops = False
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = representative_dataset
    try:
        content = converter.convert()
    except Exception as error:  # the converter raises ConverterError, or others
        ops = flex_ops_in(str(error))
        if ops and not allow_flex:
            raise FlexOpsNeeded(ops, _last_error_line(str(error))) from error
        raise
    if not allow_flex and b"Flex" in content:
        raise FlexOpsNeeded(flex_ops_in(content.decode("latin-1")), "Flex ops in the file")
    return compact.compact(content)   # merged loop subgraphs, no internal names


def _last_error_line(message):
    lines = [line.strip() for line in message.splitlines() if "error:" in line]
    return lines[0].split("error:", 1)[1].strip() if lines else message.strip()[:300]
