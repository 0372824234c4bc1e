"""The serving contract of a kzoo model: which signatures it exports, their input and output names.

One description serves both exporters (``saved_model`` and ``tflite``), so a SavedModel and a
TFLite file of the same model take and return the same named tensors.

Every model (a functional ``keras.Model``: one-to-one, one-to-many, many-to-one, many-to-many;
or a built ``keras.Sequential``, which is served through the functional graph Keras keeps for it):

* ``serving_default``: exactly the Keras model's inputs, under their Keras input names
  (``inputs``, ``features``, ``target_in_ids``, ``teacher_outputs``, ``frames``) -> ``outputs``:
  what ``model(inputs)`` returns. Batch and time are dynamic. Token ids are int32 and **0 is
  padding** (the mask is recomputed from the ids inside the graph, so it survives export).
* ``with_lengths`` (models whose first input is a real-valued sequence of dynamic length):
  ``serving_default``'s inputs plus ``lengths`` (batch,) int32 -> ``outputs``: steps at or past
  a row's length are masked, so a padded batch of sequences of several lengths gives each row
  what the row alone, cut to its length, gives. (Not in ``serving_default``: a LiteRT caller
  who sets only the Keras inputs would leave ``lengths`` uninitialized, silently.)
* ``stream`` (models with one input whose recurrent layers all run forwards, i.e. not
  bidirectional; stateful models too): as ``serving_default`` plus ``initial_state_{k}_{i}`` (state
  i of recurrent layer k, counting from 1 and 0) in and ``final_state_{k}_{i}`` out; a model with
  ``with_lengths`` takes ``lengths`` here too (after the inputs), as every input of ``stream``
  must be set anyway. Feeding a chunk's final states as the next chunk's initial states equals
  serving the whole sequence; TF Serving keeps no state between requests, so this is how a
  stateful model is served.

Seq2seq models (:class:`kzoo.models.seq2seq.Seq2Seq`):

* ``serving_default``: greedy decode. ``source_ids`` (batch, time) int32 (0 is padding),
  ``max_length`` () int32 (<= 0: the model's default, ``kzoo.models.seq2seq.
  default_decode_length``: 2 * L + 2, L the source length in the target's units, i.e. ``time``
  unless the model turns words into characters) -> ``tokens`` (batch, max_length) int32 (the end
  token included, 0 after it), ``scores``, ``lengths`` and, with attention, ``attention`` (batch,
  max_length, time): the alignment of every emitted token. A source longer than
  ``kzoo.models.seq2seq.MAX_SOURCE_UNITS`` fails with InvalidArgumentError.
* ``sample``: sampling decode (``model.generate(method="sample")``), the same graph as
  ``serving_default`` with each token drawn instead of the argmax (``kzoo.models.TokenSampler``).
  ``source_ids``, ``max_length``, ``temperature`` () float32, ``top_k`` () int32, ``top_p`` ()
  float32, ``seed`` () int32 -> ``serving_default``'s outputs (``scores``: the model's
  log-probability of the drawn tokens). A given seed draws the same tokens in Keras, the
  SavedModel and the TFLite file. Unchecked in the graph (TFLite has no assert op):
  ``temperature`` <= 0 decodes greedily, ``top_k`` <= 0 and ``top_p`` >= 1 cut nothing.
* ``beam_search``: the same inputs as ``serving_default`` -> ``tokens``/``scores`` of the best
  hypothesis, ``beam_tokens`` (batch, beam width, max_length), ``beam_scores``, ``lengths``
  (beam width ``kzoo.models.seq2seq.DEFAULT_BEAM_WIDTH``, no length or coverage penalty:
  ``model.generate(method="beam")``'s defaults).
* ``encode``: ``source_ids`` -> ``memory``, ``keys``, ``memory_mask``, ``state_{i}``;
  ``decode_step``: ``token_ids`` (batch,), ``memory``, ``keys``, ``memory_mask``, ``state_{i}`` ->
  ``logits``, ``alignment`` (zeros without attention), ``state_{i}``: for apps running their own
  decode loop.
* ``translate`` (SavedModel only, models that carry their vocabularies: ``model.vocabularies``,
  which ``kzoo train`` sets from the dataset): strings in, strings out. ``text`` (batch,)
  tf.string, ``max_length`` () int32 (<= 0: the model's default, as ``serving_default``) ->
  ``translation`` (batch,) tf.string, ``unknown_tokens`` (batch,) int32 (each text's tokens
  outside the source vocabulary, read as id 3: its translation is a guess where > 0), plus
  greedy's ``tokens``, ``scores``, ``lengths`` (and ``attention``): ``model.translate_graph``.
  The text is tokenized in the graph by the model's source
  ``TokenVectorizer`` (a ``keras.layers.StringLookup`` and ``tf.strings`` ops: split on
  whitespace at word level, into Unicode characters at char level, as the dataset did; an
  unknown token is id 3), decoded greedily, and each row's tokens before its first end (or 0)
  token joined with a space (word level) or nothing (char level). TFLite files leave it out:
  string ops are not TFLite builtins.
"""

import contextlib
import dataclasses
import functools
import inspect

import keras
import numpy as np
import tensorflow as tf

from kzoo.layers.recurrent import Recurrent
from kzoo.layers.text import START_ID

SEQ2SEQ_SIGNATURES = ("serving_default", "sample", "beam_search", "encode", "decode_step")
# The ``sample`` signature's sampling inputs and what a sample request sends: a plain draw.
SAMPLING_INPUTS = {"temperature": (tf.float32, 1.0), "top_k": (tf.int32, 0),
                   "top_p": (tf.float32, 1.0), "seed": (tf.int32, 0)}
TEXT_SIGNATURE = "translate"
LENGTHS_SIGNATURE = "with_lengths"


@dataclasses.dataclass
class Signature:
    """One exported function: ``fn(*tensors)`` -> dict of named outputs, ``specs`` its named
    inputs in order (``TensorSpec`` s with ``name`` set)."""

    name: str
    fn: object
    specs: list
    jit_compile: bool = False
    start_id: int = START_ID
    # ``example(batch_size, time)`` -> ``{input name: array}``: inputs a served model makes
    # sense of (real token ids, a fitting max_length), for sample requests; None: made up.
    example: object = None

    @property
    def input_names(self):
        return [spec.name for spec in self.specs]

    def named_fn(self):
        """``fn`` with the input names as its parameters (TF Serving and the TFLite converter
        name a signature's inputs after the Python parameters)."""
        fn = self.fn

        def named(*args):
            return fn(*args)

        named.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
             for n in self.input_names])
        named.__name__ = self.name
        return named

    def tf_function(self):
        return tf.function(self.named_fn(), input_signature=list(self.specs), autograph=False,
                           jit_compile=self.jit_compile or None)


def check_exportable(model, where):
    """TypeError unless ``model`` is a ``keras.Model``, ValueError unless it is built (has
    inputs); ``where`` (the public function) starts the message."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{where}: `model` must be a keras.Model (e.g. kzoo.build(name)), got "
                        f"{type(model).__name__}")
    if is_seq2seq(model):
        return
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not model.built or not inputs:
        start = "give it an input shape (keras.Sequential([keras.Input(shape), ...])) or " \
            if isinstance(model, keras.Sequential) else ""
        raise ValueError(f"{where}: model {model.name!r} is not built (it has no inputs yet); "
                         f"{start}build it first, e.g. model.build(input_shape) or call it on a "
                         f"batch, or use kzoo.build(name), which returns built models")


def is_seq2seq(model):
    from kzoo.models.seq2seq import Seq2Seq

    return isinstance(model, Seq2Seq)


def signatures(model, *, jit_compile=False, text=True):
    """The :class:`Signature` s ``model`` exports, ``serving_default`` first; ``text=False``
    leaves out the string signature (``translate``), which TFLite cannot hold. Each function
    traces the model in float32 (see :func:`float32_compute`)."""
    if is_seq2seq(model):
        exported = _seq2seq_signatures(model, jit_compile)
        if text and getattr(model, "vocabularies", None):
            exported.append(_translate_signature(model, jit_compile))
    else:
        model = served_model(model)
        exported = [signature for signature in (_functional_default(model),
                                                _functional_lengths(model),
                                                _functional_stream(model))
                    if signature is not None]
        for signature in exported:
            signature.jit_compile = jit_compile
    for signature in exported:
        signature.fn = _traced_in_float32(model, signature.fn)
    return exported


@contextlib.contextmanager
def float32_compute(model):
    """Inside the block, the layers of ``model`` built under a mixed precision policy
    (``mixed_float16``, ``mixed_bfloat16``: float32 variables, 16-bit compute) compute in
    float32, their variables' dtype; their policies are restored after it.

    Exports trace the model so: LiteRT has no float16 or bfloat16 kernels (a 16-bit graph would
    need Flex ops; its float16 file is ``quantize="float16"``, float16 weights), and a served
    model's signatures keep float32 tensors whatever policy the model was trained under. The
    export then computes what the float32 model with the same weights computes.
    """
    mixed = [layer for layer in model._flatten_layers(include_self=True, recursive=True)
             if layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype]
    policies = [layer.dtype_policy for layer in mixed]
    try:
        for layer in mixed:
            layer.dtype_policy = layer.dtype_policy.variable_dtype
        yield
    finally:
        for layer, policy in zip(mixed, policies):
            layer.dtype_policy = policy


def _traced_in_float32(model, fn):
    @functools.wraps(fn)
    def traced(*args):
        with float32_compute(model):
            return fn(*args)

    return traced


# -- functional models ------------------------------------------------------------------------
def _input_specs(model):
    specs = []
    for tensor in model.inputs:
        shape = [None] + list(tensor.shape[1:])
        specs.append(tf.TensorSpec(shape, tf.as_dtype(tensor.dtype), name=_input_name(tensor)))
    return specs


def _input_name(tensor):
    # A KerasTensor's name is "<layer name>" or "<layer name>_<n>"; the InputLayer gives it.
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history else tensor.name


def _needs_lengths(model):
    first = model.inputs[0]
    return len(first.shape) >= 3 and first.shape[1] is None and \
        tf.as_dtype(first.dtype).is_floating


def _run_functional(model, inputs, lengths=None, initial_states=None):
    """Run the functional graph of ``model`` at inference, optionally masking the first input by
    ``lengths`` and starting the streamed recurrent layers from ``initial_states`` (a list per
    layer). Returns ``(outputs, final_states)``."""
    from keras.src.backend import get_keras_mask
    from keras.src.models.functional import operation_fn

    inputs = list(inputs)
    if lengths is not None:
        mask = tf.sequence_mask(lengths, tf.shape(inputs[0])[1])
        inputs[0] = tf.identity(inputs[0])
        inputs[0]._keras_mask = mask
    layers = _stream_layers(model) if initial_states is not None else []
    final_states = {}

    def run_operation(operation):
        call = operation_fn(operation, training=False)
        if lengths is not None and getattr(operation, "supports_masking", False) and \
                not isinstance(operation, (Recurrent, keras.layers.Bidirectional)):
            call = _mask_passed_over_frames(call)
        if operation not in layers:
            return call
        index = layers.index(operation)

        def call_with_state(*args, **kwargs):
            # Keras fills `mask` from the inputs only when a call has one tensor argument; with
            # `initial_state` it has two, so the padding mask is handed over here.
            if kwargs.get("mask") is None:
                kwargs["mask"] = get_keras_mask(args[0])
            # Only while tracing: the layer returns its final states too.
            previous = operation.return_state
            operation.return_state = True
            try:
                output, *states = call(*args, initial_state=list(initial_states[index]),
                                       **kwargs)
            finally:
                operation.return_state = previous
            final_states[index] = states
            return [output, *states] if previous else output

        return call_with_state

    # Functional._run_through_graph is Keras' own graph walk (what Functional.call does); it lets
    # us hand initial states to the inner recurrent layers and read their final states. A built
    # Sequential runs through the Functional it keeps (what Sequential.call does).
    graph = model._functional if isinstance(model, keras.Sequential) else model
    outputs = graph._run_through_graph(inputs, operation_fn=run_operation)
    return outputs, [final_states[k] for k in range(len(layers))]


def _mask_passed_over_frames(call):
    """Keras' per-step layers (BatchNormalization, Dropout...) take a mask one rank below their
    inputs and refuse the (batch, time) mask of frames (batch, time, rows, cols, channels):
    such a layer runs unmasked, as in the Keras model, and its output carries the mask on."""
    from keras.src.backend import get_keras_mask, set_keras_mask

    def call_over_frames(*args, **kwargs):
        first = args[0] if args else None
        mask = get_keras_mask(first) if tf.is_tensor(first) else None
        if mask is None or len(mask.shape) + 1 >= len(first.shape):
            return call(*args, **kwargs)
        output = call(tf.identity(first), *args[1:], **kwargs)
        if tf.is_tensor(output):
            set_keras_mask(output, mask)
        return output

    return call_over_frames


def _output_dict(model, outputs):
    if len(model.outputs) == 1:
        return {"outputs": outputs}
    return {f"outputs_{k + 1}": o for k, o in enumerate(tf.nest.flatten(outputs))}


def _functional_default(model):
    def serve(*args):
        outputs, _ = _run_functional(model, args)
        return _output_dict(model, outputs)

    return Signature("serving_default", serve, _input_specs(model))


def _functional_lengths(model):
    if not _needs_lengths(model):
        return None
    specs = _input_specs(model)
    n_inputs = len(specs)

    def serve(*args):
        outputs, _ = _run_functional(model, args[:n_inputs], lengths=args[n_inputs])
        return _output_dict(model, outputs)

    return Signature(LENGTHS_SIGNATURE, serve,
                     specs + [tf.TensorSpec([None], tf.int32, name="lengths")])


def _stream_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, Recurrent)]


def streamable(model):
    """True when ``model`` gets a ``stream`` signature (see the module docstring)."""
    if is_seq2seq(model) or len(model.inputs) != 1:
        return False
    recurrent = _stream_layers(model)
    if not recurrent:
        return False
    # The stream walks the model's own graph: a recurrent layer inside a nested model is not
    # reached there, so its states could not be fed (a converted Keras model, a model wrapped in
    # scaling layers).
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if not all(layer in graph._operations for layer in recurrent):
        return False
    wrapped = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
               if isinstance(layer, keras.layers.Bidirectional)]
    return not wrapped and not any(layer.go_backwards for layer in recurrent)


def _functional_stream(model):
    if not streamable(model):
        return None
    layers = _stream_layers(model)
    specs = _input_specs(model)
    uses_lengths = _needs_lengths(model)
    if uses_lengths:
        specs.append(tf.TensorSpec([None], tf.int32, name="lengths"))
    n_fixed = len(specs)
    counts = []
    for k, layer in enumerate(layers):
        shapes = layer._state_shapes(None)
        counts.append(len(shapes))
        specs += [tf.TensorSpec(shape, tf.float32, name=f"initial_state_{k + 1}_{i}")
                  for i, shape in enumerate(shapes)]

    def serve(*args):
        lengths = args[1] if uses_lengths else None
        flat_states = list(args[n_fixed:])
        initial = []
        for count in counts:
            initial.append(flat_states[:count])
            flat_states = flat_states[count:]
        outputs, finals = _run_functional(model, args[:1], lengths, initial)
        result = _output_dict(model, outputs)
        for k, states in enumerate(finals):
            result.update({f"final_state_{k + 1}_{i}": s for i, s in enumerate(states)})
        return result

    return Signature("stream", serve, specs)


def served_model(model):
    """``model`` itself, or for a stateful model a stateless copy with its weights and a free
    batch size (a served function must not carry state from one request to the next)."""
    layers = model._flatten_layers(include_self=False, recursive=True)
    if not any(getattr(layer, "stateful", False) for layer in layers):
        return model
    config = model.get_config()

    def strip(node):
        if isinstance(node, dict):
            if node.get("stateful") is True:
                node["stateful"] = False
            if "batch_shape" in node and isinstance(node["batch_shape"], (list, tuple)):
                node["batch_shape"] = [None, *list(node["batch_shape"])[1:]]
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(config)
    copy = model.__class__.from_config(config)
    for layer in copy._flatten_layers(include_self=False, recursive=True):
        if not layer.weights:
            continue
        source = model.get_layer(layer.name) if _has_layer(model, layer.name) else None
        if source is None:
            continue
        weights = [w for w in source.weights if not w.path.split("/")[-1].startswith("state_")]
        layer.set_weights([w.numpy() for w in weights])
    return copy


def _has_layer(model, name):
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False


# -- seq2seq ----------------------------------------------------------------------------------
def _seq2seq_signatures(model, jit_compile):
    """See the module docstring: each signature is one of the model's serving functions
    (``search``, ``encode``, ``decode_step``), its outputs named. With ``jit_compile`` the
    encoder and the decoder step are XLA-compiled (``model.xla_functions()``)."""
    from kzoo.models.seq2seq import DEFAULT_BEAM_WIDTH

    compiled = model.xla_functions() if jit_compile else None
    encode_fn, step_fn = compiled or (model.encode, model.decode_step)
    source = tf.TensorSpec([None, None], tf.int32, name="source_ids")
    max_length = tf.TensorSpec([], tf.int32, name="max_length")

    def greedy(source_ids, length):
        return model.search(source_ids, length, compiled=compiled)

    def beam(source_ids, length):
        result = model.search(source_ids, length, beam_width=DEFAULT_BEAM_WIDTH,
                              compiled=compiled)
        keep = ("tokens", "scores", "beam_tokens", "beam_scores", "lengths")
        return {key: result[key] for key in keep}

    def sample(source_ids, length, temperature, top_k, top_p, seed):
        return model.search(source_ids, length, compiled=compiled,
                            sampling=(temperature, top_k, top_p, seed))

    def encode(source_ids):
        memory, keys, memory_mask, states = encode_fn(source_ids)
        return {"memory": memory, "keys": keys, "memory_mask": memory_mask,
                **{f"state_{i}": s for i, s in enumerate(states)}}

    # The decoder step's inputs are the encoder's outputs, as the export traces them.
    with float32_compute(model):
        out = tf.function(encode, autograph=False).get_concrete_function(
            source).structured_outputs
    n_states = sum(1 for key in out if key.startswith("state_"))
    state_specs = [tf.TensorSpec(_free_batch(out[f"state_{i}"].shape), out[f"state_{i}"].dtype,
                                 name=f"state_{i}") for i in range(n_states)]
    step_specs = [tf.TensorSpec([None], tf.int32, name="token_ids"),
                  *(tf.TensorSpec(_free_batch(out[key].shape), out[key].dtype, name=key)
                    for key in ("memory", "keys", "memory_mask")),
                  *state_specs]

    def decode_step(token_ids, memory, keys, memory_mask, *states):
        logits, new_states, alignment = step_fn(token_ids, list(states), memory, keys,
                                                memory_mask)
        return {"logits": logits, "alignment": alignment,
                **{f"state_{i}": s for i, s in enumerate(new_states)}}

    def example(batch_size, time):
        return model.serving_example(batch_size, time)

    def sample_example(batch_size, time):
        return {**example(batch_size, time),
                **{key: np.array(value, dtype.as_numpy_dtype)
                   for key, (dtype, value) in SAMPLING_INPUTS.items()}}

    sampling_specs = [tf.TensorSpec([], dtype, name=key)
                      for key, (dtype, _) in SAMPLING_INPUTS.items()]
    return [Signature("serving_default", greedy, [source, max_length], example=example),
            Signature("sample", sample, [source, max_length, *sampling_specs],
                      example=sample_example),
            Signature("beam_search", beam, [source, max_length], example=example),
            Signature("encode", encode, [source]),
            Signature("decode_step", decode_step, step_specs, start_id=model.start_id)]


def _free_batch(shape):
    dims = list(shape)
    return [None] + dims[1:]


def _translate_signature(model, jit_compile):
    """``translate``: ``model.translate_graph`` (strings -> the model's source ids -> greedy
    search -> strings; see the module docstring)."""
    compiled = model.xla_functions() if jit_compile else None

    def translate(text, max_length):
        return model.translate_graph(text, max_length, compiled=compiled)

    return Signature(TEXT_SIGNATURE, translate,
                     [tf.TensorSpec([None], tf.string, name="text"),
                      tf.TensorSpec([], tf.int32, name="max_length")])
