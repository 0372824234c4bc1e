"""``export_run``: a run's model exported and verified (what ``kzoo export`` runs)."""

import dataclasses
import os
import pathlib

from kzoo.checks import check_choice
from kzoo.choices import QUANTIZE_MODES
from kzoo.training.data import load_run_split
from kzoo.training.run_dir import file_sha256, load_run_model, read_json, read_run, write_json

# The artifacts a run is exported as: ``kzoo.export.saved_model`` and ``kzoo.export.tflite``.
EXPORT_FORMATS = ("saved_model", "tflite")
# In the export directory: the verification, and the model.keras each artifact came from.
EXPORT_RECORD = "report.json"


@dataclasses.dataclass
class ExportRun:
    """A run's export, as :func:`export_run` returns it.

    Attributes:
        directory: the export directory.
        paths: every artifact asked for: the SavedModel's version directory, TFLite files.
        written: those this call exported; empty when all were up to date with the model.
        report: this call's ``kzoo.export`` verification report, or, when nothing was
            written, the text of the last one.
    """

    directory: pathlib.Path
    paths: list
    written: list
    report: object


def export_run(run_dir, formats=EXPORT_FORMATS, quantize=None, out=None, samples=32,
               data_dir=None, overwrite=False):
    """Exports a run's model and verifies the artifacts (what ``kzoo export`` runs).

    Into ``out``: ``saved_model/<version>/`` (``kzoo.export.saved_model``, TF Serving's layout)
    and ``model.tflite`` (``kzoo.export.tflite``), plus ``model.<quantize>.tflite``; then every
    artifact is checked against the Keras model on ``samples`` held-out examples
    (``kzoo.export.verify``): the test split of the run's dataset, or of its own data file
    (rows training never saw).

    Safe to rerun: ``out/report.json`` records the SHA-256 of the model.keras each artifact was
    exported from. An artifact exported from the current model.keras is kept as it is (when all
    are, nothing is exported: ``written`` is empty); the others are exported again, each
    atomically: a SavedModel as the next version (TF Serving moves to it), a TFLite file in
    place of the earlier one.

    Args:
        run_dir: a finished run directory.
        formats: the formats of :data:`EXPORT_FORMATS` to export: ``"saved_model"``,
            ``"tflite"``, or both.
        quantize: None, or a quantization of ``kzoo.export.tflite`` (``"dynamic"``,
            ``"float16"``, ``"int8"``) for an extra quantized TFLite file.
        out: the export directory (default ``run_dir/export``).
        samples: the held-out examples the verification runs on.
        data_dir: where datasets are prepared (None: TFDS' default).
        overwrite: export everything again (SavedModel version 1, TFLite files replaced); a
            TFLite file at ``out`` that no export of this run wrote is an error without it.

    Returns:
        An :class:`ExportRun`.

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished run.
        ValueError: an unknown format or quantization, or a TFLite file in the way.
        FlexOpsNeeded: the model needs TensorFlow ops that builtin TFLite lacks.

    Example:

    ```python
    import kzoo.training

    run = kzoo.training.train("many_to_one_gru", "example", out="runs/gru", epochs=1,
                              batch_size=8, dataset_options={"size": 16},
                              model_config={"units": 8, "vocab_size": 20}, verbose=0)
    export = kzoo.training.export_run(run.directory, formats=["tflite"], samples=4)
    print(export.written)      # ['/.../runs/gru/export/model.tflite']
    print(export.report)
    ```
    """
    formats = [formats] if isinstance(formats, str) else list(formats)
    if not formats:
        raise ValueError(f"export_run: `formats` must name at least one of {EXPORT_FORMATS}")
    for name in formats:
        check_choice("export_run", "formats", name, EXPORT_FORMATS)
    check_choice("export_run", "quantize", quantize, QUANTIZE_MODES)
    import kzoo.export

    config = read_run(run_dir)
    out = pathlib.Path(out) if out else pathlib.Path(run_dir) / "export"
    digest = file_sha256(pathlib.Path(run_dir) / "model.keras")
    record = read_json(out / EXPORT_RECORD, {})
    exported = dict(record.get("artifacts", {}))   # {name: {"path": ..., "model_sha256": ...}}
    tflite_paths = {mode: out / ("model.tflite" if mode is None else f"model.{mode}.tflite")
                    for mode in [None] + ([quantize] if quantize else [])}
    wanted = (["saved_model"] if "saved_model" in formats else []) + \
        ([path.name for path in tflite_paths.values()] if "tflite" in formats else [])

    def up_to_date(name):
        entry = exported.get(name)
        return bool(entry) and entry.get("model_sha256") == digest and \
            os.path.exists(entry["path"])

    stale = [name for name in wanted if overwrite or not up_to_date(name)]
    if not stale:
        return ExportRun(directory=out, paths=[exported[name]["path"] for name in wanted],
                         written=[], report=record.get("report"))
    if not overwrite:
        ours = set(exported) | {os.path.basename(p) for p in record.get("paths", [])}
        for path in tflite_paths.values():
            if path.name in stale and path.exists() and path.name not in ours:
                raise ValueError(f"{str(path)!r} exists; pass --overwrite to replace it")
    model = load_run_model(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch = _sample_batch(config, samples, data_dir)

    def recorded(name, path):
        exported[name] = {"path": str(path), "model_sha256": digest}
        # Recorded at once: if a later artifact fails, a rerun keeps this one.
        write_json(out / EXPORT_RECORD, {**record, "artifacts": exported})
        return path

    new_paths = []
    if "saved_model" in stale:
        version = 1 if overwrite else None
        new_paths.append(recorded("saved_model", kzoo.export.saved_model(
            model, out / "saved_model", version=version, overwrite=overwrite)))
    files = {mode: path for mode, path in tflite_paths.items() if path.name in stale}
    if files:
        # Existing files are replaced by the atomic writer only once every new file is
        # written: a failed export leaves the previous ones.
        representative = None
        if "int8" in files:
            inputs = batch[0]
            representative = [inputs[0] if isinstance(inputs, tuple) and
                              hasattr(model, "generate") else inputs]
        # One trace for every non-int8 file (tracing is about half of a conversion).
        paths = kzoo.export.tflite_files(model, dict(files), representative_data=representative)
        new_paths += [recorded(files[mode].name, paths[mode]) for mode in files]
    all_paths = [exported[name]["path"] for name in wanted]
    report = kzoo.export.verify(model, all_paths, batch)
    write_json(out / EXPORT_RECORD, {"report": str(report), "paths": all_paths,
                                     "artifacts": exported})
    return ExportRun(directory=out, paths=all_paths, written=[str(p) for p in new_paths],
                     report=report)


def _sample_batch(config, count, data_dir=None):
    """``(inputs, targets)`` of up to ``count`` held-out examples, as NumPy arrays."""
    import tensorflow as tf

    data, _, _ = load_run_split(config, "test", count, data_dir)
    inputs, targets = next(iter(data.take(1)))
    return tf.nest.map_structure(lambda x: x.numpy(), (inputs, targets))
