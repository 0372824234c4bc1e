"""``kzoo.export.tflite``: a builtins-only LiteRT (TFLite) file with the model's signatures.

The file holds the signatures of :mod:`kzoo.export.signatures` (for seq2seq: greedy and beam
search as ``WHILE`` loops, plus ``encode``/``decode_step``; not the string ``translate``), traced in the scan engine's
TensorList-free form with batch and time dynamic (``resize_tensor_input`` or the signature runner
take any size). Quantization is the converter's post-training quantization.
"""

import os

import numpy as np

from kzoo.export import atomic, lite
from kzoo.export.serving import sample_inputs
from kzoo.export.signatures import LENGTHS_SIGNATURE, check_exportable, served_model, \
    signatures

QUANTIZE_MODES = lite.QUANTIZE_MODES


def tflite(model, path, quantize=None, representative_data=None, allow_flex=False):
    """Convert ``model`` to a TFLite file at ``path``; returns ``path``.

    ``quantize``: None (float32), "dynamic" (int8 weights, float activations: about 4x smaller),
    "float16" (float16 weights: the file for mobile GPU delegates) or "int8" (int8 weights and
    activations where the op allows it, float elsewhere), which calibrates on
    ``representative_data``: an iterable of ``serving_default`` inputs, each an array, a tuple
    of arrays in the signature's input order, or a dict by input name (a few dozen batches).
    Builtin ops only unless ``allow_flex=True``; a model that would need a Flex op raises
    :class:`kzoo.export.lite.FlexOpsNeeded` naming it. Written atomically (temporary file, then
    renamed): a failure leaves no file behind.
    """
    return _write(model, {quantize: path}, representative_data, allow_flex,
                  "kzoo.export.tflite")[quantize]


def tflite_files(model, files, representative_data=None, allow_flex=False):
    """:func:`tflite` for several quantize modes at once: ``files`` is ``{quantize: path}``
    (e.g. ``{None: "m.tflite", "dynamic": "m.dyn.tflite"}``); returns it with absolute paths.

    The files are those :func:`tflite` writes one by one, from one trace of the model (tracing
    is about half of a conversion; an int8 file takes a trace of its own). All are written or,
    on a failure, none.
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
