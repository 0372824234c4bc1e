"""Model files in, model files and export artifacts out: what ``kzoo convert`` and ``kzoo export
FILE.keras`` run.

Nothing is written before the model has loaded and converted, and every file is written under a
temporary name and renamed into place (``kzoo.export.atomic``), so a failure leaves no
half-written file.
"""

import dataclasses
import os
import re
import shutil
import tempfile

from kzoo.conversion.errors import ConversionError

# What Keras' loader reads: the Keras 3 zip file and the legacy HDF5 file.
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
# Time lengths of the random inputs `kzoo export FILE` verifies on (a dynamic time axis).
SAMPLE_LENGTHS = (1, 5, 12)
SAMPLE_BATCH = 4
# Any other dynamic dimension of a random input (frame rows and columns).
SAMPLE_SIZE = 8
_CUSTOM_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def is_model_file(path):
    """Whether ``path`` names a Keras model file by its suffix (``.keras``, ``.h5``, ``.hdf5``)."""
    return str(path).lower().endswith(MODEL_SUFFIXES)


def load_keras_model(path):
    """Loads a Keras model file (``.keras``, or ``.h5`` where Keras' loader reads it).

    Args:
      path: the file.

    Returns:
      The ``keras.Model``, compiled when the file holds a training configuration.

    Raises:
      FileNotFoundError: no such file.
      ConversionError: the file is not a Keras model file, or it needs classes or functions
        this process does not have (they are named: import their module first).
    """
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path!r}")
    if not is_model_file(path):
        raise ConversionError(f"{path!r} is not a Keras model file: expected a name ending in "
                              f"{', '.join(MODEL_SUFFIXES)}")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # Keras raises anything from ValueError to zipfile/h5py errors
        names = sorted(set(_CUSTOM_CLASS.findall(str(error))))
        if names:
            raise ConversionError(
                f"{path!r} needs custom object(s) {', '.join(names)} that this process does "
                f"not have: import the module that registers them "
                f"(keras.saving.register_keras_serializable) and load it from Python") from None
        message = " ".join(str(error).split())[:300]
        raise ConversionError(f"{path!r} is not a Keras model file Keras can load "
                              f"({type(error).__name__}: {message})") from None
    if not isinstance(model, keras.Model):
        raise ConversionError(f"{path!r} holds a {type(model).__name__}, not a keras.Model")
    return model


def _check_destination(path, overwrite):
    if not str(path).endswith(".keras"):
        raise ConversionError(f"the converted model is written as a .keras file; got {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True (--overwrite) to replace it")


def save_atomically(model, path):
    """Saves ``model`` as the ``.keras`` file ``path`` under a temporary name, then renames it
    into place: ``path`` is either the old file or the whole new one."""
    from kzoo.export import atomic

    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    name = os.path.basename(path)
    created = atomic.make_dirs(directory, "kzoo convert")
    # keras.saving.save_model wants a name ending in .keras: a temporary directory holds it.
    staging = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=directory)
    commit = atomic.Commit()
    try:
        staged = os.path.join(staging, name)
        model.save(staged)
        commit.add(staged, path)
        commit.commit()
    except BaseException:
        commit.discard()
        atomic.remove(created)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def convert_file(source, destination, overwrite=False, strict=True):
    """Converts the Keras model in ``source`` and saves it to ``destination`` (``.keras``).

    Args:
      source: a ``.keras`` file (or a legacy ``.h5`` one Keras' loader reads).
      destination: the converted model's ``.keras`` file.
      overwrite: whether an existing ``destination`` may be replaced.
      strict: as for :func:`kzoo.convert`.

    Returns:
      The converted ``keras.Model``.

    Raises:
      FileNotFoundError: ``source`` does not exist.
      FileExistsError: ``destination`` exists and not ``overwrite``.
      ConversionError: as :func:`load_keras_model` and :func:`kzoo.convert`; nothing is
        written then.
    """
    from kzoo.conversion.model import convert

    _check_destination(destination, overwrite)
    model = convert(load_keras_model(source), strict=strict)
    save_atomically(model, destination)
    return model


@dataclasses.dataclass
class FileExport:
    """What :func:`export_file` wrote and measured.

    Attributes:
      directory: the export directory.
      paths: the SavedModel version directory and the TFLite files written.
      conversion_diff: the largest absolute difference between the converted model's outputs
        and the original Keras model's, over every verification batch.
      reports: one ``kzoo.export.verify`` report per verification batch.
      batches: what each batch was (``"random inputs, time length 5"``, ``"samples.npz"``).
    """

    directory: str
    paths: list
    conversion_diff: float
    reports: list
    batches: list

    def __str__(self):
        lines = [f"converted model vs the Keras model: max |diff| {self.conversion_diff:.2e}"]
        for batch, report in zip(self.batches, self.reports):
            lines += [f"on {batch}:", str(report)]
        return "\n".join(lines)


def default_export_directory(path):
    stem = os.path.basename(os.fspath(path))
    for suffix in MODEL_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[:-len(suffix)]
    return os.path.join(os.path.dirname(os.path.abspath(os.fspath(path))), f"{stem}_export")


def export_file(path, out=None, samples=None, formats=("saved_model", "tflite"), quantize=None,
                overwrite=False):
    """Converts the Keras model in ``path``, exports it and verifies the artifacts.

    Into ``out``: ``saved_model/<version>/`` (``kzoo.export.saved_model``: TF Serving's layout)
    and ``model.tflite`` (``kzoo.export.tflite``: builtin ops only), plus
    ``model.<quantize>.tflite``. Then each artifact runs next to the converted model
    (``kzoo.export.verify``) on ``samples``, or on random inputs shaped by the model's inputs:
    a batch per time length of :data:`SAMPLE_LENGTHS` when the time axis is dynamic (token ids
    in the range of the model's smallest ``Embedding``, the rows' tails padded with 0).

    Args:
      path: a ``.keras`` (or ``.h5``) file of a Keras model; no kzoo import needed to write it.
      out: the export directory (default ``<file stem>_export`` next to the file).
      samples: None (random inputs), or a ``.npz`` file with one array per model input, keyed
        by input name (or ``arr_0``, ``arr_1``... in the model's input order).
      formats: ``"saved_model"``, ``"tflite"`` or both.
      quantize: None, or a quantization of ``kzoo.export.tflite`` for an extra TFLite file.
      overwrite: replace SavedModel version 1 and the TFLite files; without it a TFLite file in
        the way is an error and the SavedModel goes to the next version.

    Returns:
      A :class:`FileExport`; ``str()`` of it is the report ``kzoo export`` prints.

    Raises:
      FileNotFoundError: ``path`` or ``samples`` does not exist.
      FileExistsError: a TFLite file is in the way and not ``overwrite``.
      ConversionError: as :func:`load_keras_model` and :func:`kzoo.convert`, or ``samples``
        lack an input. Nothing is written then.
    """
    import kzoo.export
    from kzoo.conversion.model import convert
    from kzoo.export import atomic

    keras_model = load_keras_model(path)
    model = convert(keras_model, strict=True)
    if samples is not None:
        batches = {os.path.basename(os.fspath(samples)): _read_samples(samples, model)}
    else:
        batches = _random_batches(model)
    out = os.path.abspath(os.fspath(out or default_export_directory(path)))
    tflite_paths = {mode: os.path.join(out, "model.tflite" if mode is None
                                       else f"model.{mode}.tflite")
                    for mode in [None] + ([quantize] if quantize else [])}
    if "tflite" in formats and not overwrite:
        for file in tflite_paths.values():
            if os.path.lexists(file):
                raise FileExistsError(f"{file!r} exists; pass --overwrite to replace it")
    created = atomic.make_dirs(out, "kzoo export")
    written = []
    try:
        if "saved_model" in formats:
            written.append(str(kzoo.export.saved_model(
                model, os.path.join(out, "saved_model"), version=1 if overwrite else None,
                overwrite=overwrite)))
        if "tflite" in formats:
            written += list(kzoo.export.tflite_files(model, tflite_paths).values())
    except BaseException:
        if created:
            atomic.remove(created)
        else:
            for artifact in written:
                atomic.remove(artifact)
        raise
    diff = 0.0
    reports = []
    for batch in batches.values():
        diff = max(diff, _max_diff(model, keras_model, batch))
        reports.append(kzoo.export.verify(model, written, batch, latency_runs=1))
    return FileExport(directory=out, paths=written, conversion_diff=diff, reports=reports,
                      batches=list(batches))


def _input_names(model):
    from kzoo.export.signatures import _input_name

    return [_input_name(tensor) for tensor in model.inputs]


def _read_samples(path, model):
    import numpy as np

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no samples file {os.fspath(path)!r}")
    try:
        with np.load(path) as archive:
            arrays = dict(archive)
    except (OSError, ValueError) as error:
        raise ConversionError(f"{os.fspath(path)!r} is not a .npz file of arrays "
                              f"({error})") from None
    names = _input_names(model)
    positional = [f"arr_{k}" for k in range(len(names))]
    if all(name in arrays for name in names):
        return {name: arrays[name] for name in names}
    if all(key in arrays for key in positional):
        return {name: arrays[key] for name, key in zip(names, positional)}
    raise ConversionError(f"{os.fspath(path)!r} holds {sorted(arrays)}; the model takes "
                          f"{names} (save one array per input under those names)")


def _vocabulary_size(model):
    import keras

    sizes = [layer.input_dim for layer in model._flatten_layers(include_self=False)
             if isinstance(layer, keras.layers.Embedding)]
    return min(sizes) if sizes else 2


def _random_batches(model, seed=0):
    """``{description: {input name: array}}``: a batch per length of :data:`SAMPLE_LENGTHS`
    (one batch when no time axis is dynamic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dynamic_time = any(len(t.shape) >= 2 and t.shape[1] is None for t in model.inputs)
    batches = {}
    for length in SAMPLE_LENGTHS if dynamic_time else SAMPLE_LENGTHS[-1:]:
        batch = {}
        for name, tensor in zip(_input_names(model), model.inputs):
            shape = [tensor.shape[0] or SAMPLE_BATCH]
            shape += [length if (k == 1 and d is None) else (d or SAMPLE_SIZE)
                      for k, d in enumerate(tensor.shape) if k > 0]
            if np.dtype(tensor.dtype).kind in "iu":
                ids = rng.integers(1, max(_vocabulary_size(model), 2), size=shape)
                if len(shape) >= 2 and shape[1] > 1:   # padding at the tail of every other row
                    ids[1::2, shape[1] // 2 + 1:] = 0
                batch[name] = ids.astype(tensor.dtype)
            else:
                batch[name] = rng.normal(size=shape).astype(tensor.dtype)
        key = f"random inputs, time length {length}" if dynamic_time else "random inputs"
        batches[key] = batch
    return batches


def _max_diff(model, keras_model, batch):
    import numpy as np
    import tensorflow as tf

    inputs = [batch[name] for name in _input_names(keras_model)]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    ours = tf.nest.flatten(model(inputs, training=False))
    theirs = tf.nest.flatten(keras_model(inputs, training=False))
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))
               for a, b in zip(ours, theirs))
