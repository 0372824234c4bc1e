"""``export_run``: a run's model exported and verified (what ``kzoo export`` runs)."""

import dataclasses
import os
import pathlib

from kzoo.training.data import load_run_split
from kzoo.training.run_dir import file_sha256, load_run_model, read_json, read_run, write_json

EXPORT_RECORD = "report.json"


@dataclasses.dataclass
class ExportRun:
    """What :func:`export_run` returns."""

    directory: pathlib.Path
    paths: list      # every artifact asked for (a SavedModel version directory, TFLite files)
    written: list    # those this call exported: [] when all were up to date with the model
    report: object   # this call's kzoo.export.ExportReport, or the last one's text if no write


def export_run(run_dir, formats=("saved_model", "tflite"), quantize=None, out=None,
               samples=32, data_dir=None, overwrite=False):
    """Export a run's model with ``kzoo.export`` into ``out`` (default ``RUN_DIR/export``):
    ``saved_model/<version>/`` and ``model.tflite`` (+ ``model.<quantize>.tflite``), then verify
    every artifact on ``samples`` held-out examples. Returns an :class:`ExportRun`.

    Safe to rerun: ``out/report.json`` records the SHA-256 of the model.keras each artifact was
    exported from. An artifact exported from the current model.keras is kept as it is (when all
    are, nothing is exported: ``written`` is empty); the others are exported again, each
    atomically: a SavedModel as the next version (TF Serving moves to it), a TFLite file in
    place of the earlier one. ``overwrite=True`` exports everything again (SavedModel version 1,
    TFLite files replaced). A TFLite file at ``out`` that no export of this run wrote is an
    error unless ``overwrite``.
    """
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
    data, _ = load_run_split(config, "test", count, data_dir)
    inputs, targets = next(iter(data.take(1)))
    to_numpy = (lambda x: x.numpy())
    import tensorflow as tf

    return tf.nest.map_structure(to_numpy, (inputs, targets))
