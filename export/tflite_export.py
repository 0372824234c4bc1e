"""``kzoo.export.tflite``: a builtins-only LiteRT (TFLite) file with the model's signatures.

The file holds the signatures of :mod:`kzoo.export.signatures` (for seq2seq: greedy and beam
search as ``WHILE`` loops, plus ``encode``/``decode_step``; not the string ``translate``), traced
in the scan engine's TensorList-free form with batch and time dynamic (``resize_tensor_input`` or
the signature runner take any size). Quantization is the converter's post-training quantization.
"""

import os

import numpy as np

from kzoo.export import atomic, lite
from kzoo.export.serving import sample_inputs
from kzoo.export.signatures import LENGTHS_SIGNATURE, check_exportable, served_model, \
    signatures

QUANTIZE_MODES = lite.QUANTIZE_MODES


def tflite(model, path, quantize=None, representative_data=None, allow_flex=False):
    """Converts ``model`` to a LiteRT (TFLite) file of builtin ops.

    The file holds the signatures of :mod:`kzoo.export.signatures` under the same names as the
    SavedModel of :func:`kzoo.export.saved_model` (for seq2seq: greedy and beam search as
    ``WHILE`` loops inside the file, plus ``encode``/``decode_step``; not the string
    ``translate``, as string ops are not builtins). The recurrent loops are traced in the scan
    engine's TensorList-free form, so the plain LiteRT interpreter (``ai_edge_litert``) runs the
    file without the Flex delegate; batch and time stay dynamic (``resize_tensor_input`` or the
    signature runner take any size). The file is written under a temporary name and renamed
    into place: a failure leaves no file behind.

    Args:
        model: a built ``keras.Model``: a model of ``kzoo.build``, a functional model made of
            kzoo layers, or a ``kzoo.models.seq2seq.Seq2Seq``.
        path: the file to write (str or path-like), e.g. ``"model.tflite"``; missing parent
            directories are created, an existing file is replaced.
        quantize: the TFLite converter's post-training quantization. None (default): float32.
            ``"dynamic"``: int8 weights (those read inside the loops too), float activations.
            ``"float16"``: float16 weights, the file for mobile GPU delegates. ``"int8"``: int8
            weights and activations where the op allows it, float elsewhere, calibrated on
            ``representative_data``.
        representative_data: required for ``quantize="int8"`` and used only there: an
            iterable of ``serving_default`` inputs (a few dozen batches of real data), each an
            array, a tuple of arrays in the signature's input order, or a dict by input name.
        allow_flex: whether the file may hold TensorFlow (Select TF, "Flex") ops, which only an
            interpreter linked with the Flex delegate runs (default False: builtins only).

    Returns:
        The absolute path (str) of the file written.

    Raises:
        TypeError: if ``model`` is not a ``keras.Model``.
        ValueError: if ``model`` is not built, ``quantize`` is not one of None, ``"dynamic"``,
            ``"float16"``, ``"int8"``, ``quantize="int8"`` comes without
            ``representative_data`` (or with samples that do not fit ``serving_default``), or
            ``allow_flex`` is not a bool.
        FlexOpsNeeded: (a ValueError) if the model needs Flex ops and ``allow_flex`` is False,
            for example a model of ``keras.layers.LSTM``; the message names the ops.
        IsADirectoryError: if ``path`` is a directory.
        OSError: if ``path`` cannot be written (the message names it).

    Example:

    ```python
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    import kzoo
    import kzoo.export

    model = kzoo.build("many_to_one_gru", input_dim=3, num_classes=2, units=4)
    kzoo.export.tflite(model, "classifier.tflite")
    interpreter = Interpreter(model_path="classifier.tflite")
    classify = interpreter.get_signature_runner("serving_default")
    inputs = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    print(classify(inputs=inputs)["outputs"].shape)             # (2, 2): class probabilities
    kzoo.export.tflite(model, "classifier.dyn.tflite", quantize="dynamic")   # int8 weights
    ```
    """
    return _write(model, {quantize: path}, representative_data, allow_flex,
                  "kzoo.export.tflite")[quantize]


def tflite_files(model, files, representative_data=None, allow_flex=False):
    """Writes the files of :func:`tflite` for several ``quantize`` modes from one trace.

    Each file is byte for byte the one ``tflite(model, path, quantize=...)`` writes, but the
    model is traced and saved once for all of them (an ``"int8"`` file takes a trace of its
    own, in the form TensorFlow's calibrator runs); see docs/export.md for what that saves.
    All files are written or, on a failure, none.

    Args:
        model: a built ``keras.Model``, as for :func:`tflite`.
        files: a non-empty dict ``{quantize: path}``, one entry per file: each key one of
            None, ``"dynamic"``, ``"float16"``, ``"int8"`` (see :func:`tflite`), each value a
            file path (str or path-like), no two the same.
        representative_data: the calibration samples of an ``"int8"`` file, as for
            :func:`tflite`; required when ``files`` has an ``"int8"`` key.
        allow_flex: whether the files may hold Flex ops, as for :func:`tflite`.

    Returns:
        ``files`` with absolute paths: a dict ``{quantize: absolute path (str)}``.

    Raises:
        TypeError: if ``model`` is not a ``keras.Model``.
        ValueError: if ``files`` is not a non-empty dict, two modes share a path, or for any
            reason :func:`tflite` gives.
        FlexOpsNeeded: if the model needs Flex ops and ``allow_flex`` is False.
        IsADirectoryError: if a path is a directory.
        OSError: if a file cannot be written (the message names it).

    Example:

    ```python
    import os
    import kzoo
    import kzoo.export

    model = kzoo.build("many_to_many_gru", vocab_size=20, num_classes=3, units=4)
    paths = kzoo.export.tflite_files(model, {None: "tagger.tflite",
                                             "dynamic": "tagger.dyn.tflite"})
    print({mode: os.path.basename(path) for mode, path in paths.items()})
    # {None: 'tagger.tflite', 'dynamic': 'tagger.dyn.tflite'}
    ```
    """
    where = "kzoo.export.tflite_files"
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{where}: `files` must be a non-empty dict {{quantize: path}}, got "
                         f"{files!r}")
    return _write(model, files, representative_data, allow_flex, where)


def _write(model, files, representative_data, allow_flex, where):
    check_exportable(model, where)
    for quantize in files:
        if quantize not in QUANTIZE_MODES:
            raise ValueError(f"{where}: `quantize` must be one of {QUANTIZE_MODES}, got "
                             f"{quantize!r}")
    if "int8" in files and representative_data is None:
        raise ValueError(f"{where}: quantize='int8' calibrates activation ranges and needs "
                         f"`representative_data` (an iterable of serving_default inputs, e.g. "
                         f"a few dozen batches of real data)")
    if not isinstance(allow_flex, bool):
        raise ValueError(f"{where}: `allow_flex` must be True or False, got {allow_flex!r}")
    paths = {quantize: os.path.abspath(os.fspath(path)) for quantize, path in files.items()}
    if len(set(paths.values())) < len(paths):
        raise ValueError(f"{where}: two quantize modes would write the same file: {files!r}")
    for path in paths.values():
        if os.path.isdir(path):
            raise IsADirectoryError(f"{where}: {path!r} is a directory; give a file path "
                                    f"(e.g. model.tflite)")
    created = []
    try:
        for path in paths.values():
            created.append(atomic.make_dirs(os.path.dirname(path), where))
    except BaseException:
        for directory in reversed(created):
            atomic.remove(directory)
        raise
    commit = atomic.Commit()
    try:
        for path in paths.values():
            directory = os.path.dirname(path)
            atomic.check_writable(directory, where)
            atomic.recover_leftovers(directory, lambda name, path=path:
                                     name == os.path.basename(path))
        served = served_model(model)
        exported = signatures(served, text=False)  # string ops are not TFLite builtins
        functions = {s.name: (s.named_fn(), s.specs) for s in exported}
        dataset = None
        if "int8" in paths:
            dataset = _representative_dataset(exported, representative_data, where)
        try:
            contents = lite.convert_variants(functions, list(paths), allow_flex=allow_flex,
                                             representative_dataset=dataset,
                                             variables=served.variables)
        except lite.FlexOpsNeeded as error:
            raise lite.FlexOpsNeeded(error.ops, error.detail, where) from error
        for quantize, path in paths.items():
            staged = atomic.staged_file(os.path.dirname(path), os.path.basename(path))
            commit.add(staged, path)
            with open(staged, "wb") as handle:
                handle.write(contents[quantize])
        commit.commit()
    except BaseException as error:
        commit.discard()
        for directory in reversed(created):
            atomic.remove(directory)
        if isinstance(error, OSError):
            # Not the loop variable `path`: with several files it names only the last.
            destination = next(iter(paths.values())) if len(paths) == 1 else list(paths.values())
            raise atomic.clear_os_error(error, where, destination) from error
        raise
    return paths


def _as_input_dict(signature, sample, where):
    names = signature.input_names
    if isinstance(sample, dict):
        missing = sorted(set(names) - set(sample))
        if missing:
            raise ValueError(f"{where}: a representative_data sample lacks input(s) {missing} "
                             f"of signature {signature.name!r} (inputs {names})")
        values = [sample[name] for name in names]
    else:
        values = list(sample) if isinstance(sample, (list, tuple)) else [sample]
        if signature.name == "serving_default" and names == ["source_ids", "max_length"] \
                and len(values) == 1:
            values.append(np.array(0, np.int32))
        if len(values) != len(names):
            raise ValueError(f"{where}: a representative_data sample has {len(values)} "
                             f"array(s); signature {signature.name!r} takes {names}")
    return {name: np.asarray(value, spec.dtype.as_numpy_dtype)
            for name, value, spec in zip(names, values, signature.specs)}


def _representative_dataset(exported, representative_data, where):
    """The converter's calibration generator: for every sample, inputs for every signature (the
    other signatures' inputs are derived from ``serving_default``'s: full lengths, zero initial
    states; for seq2seq, the encoder's outputs and the start token)."""
    samples = [_as_input_dict(exported[0], s, where) for s in representative_data]
    if not samples:
        raise ValueError(f"{where}: `representative_data` is empty")
    by_name = {s.name: s for s in exported}

    def derived(name, sample):
        signature = by_name[name]
        if name in ("serving_default", "beam_search"):
            return {k: sample[k] for k in signature.input_names}
        if name == "sample":
            return {**sample_inputs(signature, batch_size=1),
                    **{k: sample[k] for k in ("source_ids", "max_length")}}
        first = next(iter(sample.values()))
        batch = first.shape[0]
        if name in (LENGTHS_SIGNATURE, "stream"):
            extra = sample_inputs(signature, batch_size=batch)  # zero states
            if "lengths" in extra:
                extra["lengths"] = np.full([batch], first.shape[1], np.int32)
            return {k: sample.get(k, extra.get(k)) for k in signature.input_names}
        encoded = by_name["encode"].tf_function()(sample["source_ids"])
        if name == "encode":
            return {"source_ids": sample["source_ids"]}
        start = np.full([batch], signature.start_id, np.int32)
        return {k: (start if k == "token_ids" else encoded[k].numpy())
                for k in signature.input_names}

    def generate():
        for sample in samples:
            for signature in exported:
                yield signature.name, derived(signature.name, sample)

    return generate
