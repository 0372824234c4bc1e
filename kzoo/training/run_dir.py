"""A run directory: what ``kzoo train`` writes into it and the other commands read.

A run directory holds::

    config.json        the command's settings (model, model_config, dataset, epochs, seed...)
    model.keras        the trained model (written when training ends); a seq2seq model trained
                       on text carries the dataset's vocabularies (``model.translate``)
    vocab/*.json       the dataset's vocabularies (token lists, index = id), if it has any
    history.json       one entry per completed epoch (written at each epoch's end)
    backup/            keras.callbacks.BackupAndRestore: weights, optimizer state, epoch
    logs/              TensorBoard event files
    plots/*.png        training curves (and an attention heatmap for seq2seq with attention)
    export/            ``kzoo export``'s artifacts, and report.json: the verification and the
                       SHA-256 of the model.keras each artifact was exported from

Every file is written atomically (a kill never leaves half a file).
"""

import json
import os
import pathlib
import zipfile

RUN_FILES = ("config.json", "model.keras", "history.json")

# The settings that define a run: a rerun into the same directory with other values is refused,
# since resuming would mix two runs (``epochs`` may grow: training continues).
IDENTITY_KEYS = ("model", "model_config", "dataset", "dataset_options", "batch_size",
                 "learning_rate", "clipnorm", "seed", "strategy", "tbptt", "steps_per_epoch")


def write_json(path, value):
    """Write ``value`` as JSON atomically (a kill never leaves half a file)."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, default=json_default) + "\n")
    os.replace(temporary, path)


def json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_json(path, default=None):
    path = pathlib.Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); was it truncated?") \
            from error


def read_run(run_dir):
    """The config of a finished run directory; FileNotFoundError names what is missing."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {str(run_dir)!r}")
    for name in ("config.json", "model.keras"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a finished run: no {name} "
                                    f"(train into it with `kzoo train ... --out {run_dir}`)")
    return read_json(run_dir / "config.json")


def load_run_model(run_dir):
    import keras

    import kzoo.layers  # noqa: F401  (registers the layers for deserialization)
    import kzoo.models.zoo  # noqa: F401

    path = pathlib.Path(run_dir) / "model.keras"
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        if not path.is_file():
            raise
        # (Keras says "File not found" of a file that is not a whole zip archive.)
        raise ValueError(f"{str(path)!r} is not a readable .keras model (a truncated or "
                         f"corrupted file?)") from error


def read_vocabularies(run_dir):
    directory = pathlib.Path(run_dir) / "vocab"
    if not directory.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def write_vocabularies(run_dir, vocabularies):
    if not vocabularies:
        return
    directory = pathlib.Path(run_dir) / "vocab"
    directory.mkdir(exist_ok=True)
    for name, tokens in dict(vocabularies).items():
        if hasattr(tokens, "get_vocabulary"):
            tokens = tokens.get_vocabulary()
        write_json(directory / f"{name}.json", [str(t) for t in list(tokens)])


def backup_epoch(run_dir):
    """The number of epochs BackupAndRestore has saved in ``run_dir/backup`` (0 if none)."""
    metadata = read_json(pathlib.Path(run_dir) / "backup" / "training_metadata.json", {})
    return int(metadata.get("epoch", 0))


def trained_epochs(run_dir):
    """The epochs ``run_dir/model.keras`` holds: those of the backup when model.keras was
    saved after it (as training does once its last epoch is backed up), else 0."""
    run_dir = pathlib.Path(run_dir)
    model, weights = run_dir / "model.keras", run_dir / "backup" / "latest.weights.h5"
    if not model.is_file() or not weights.is_file() or \
            model.stat().st_mtime_ns < weights.stat().st_mtime_ns:
        return 0
    return backup_epoch(run_dir)


# Metrics renamed since a run was trained: history.json of an older run reads with the new names.
RENAMED_METRICS = {"sequence_accuracy": "token_accuracy"}


def read_history(path):
    """A run's history.json (``{"epochs": [...], "metrics": {name: [...]}}``, empty if there is
    none yet), metric names as they are now (:data:`RENAMED_METRICS`)."""
    history = read_json(path, {"epochs": [], "metrics": {}})
    metrics = {}
    for key, values in history.get("metrics", {}).items():
        prefix = "val_" if key.startswith("val_") else ""
        name = key[len(prefix):]
        metrics[prefix + RENAMED_METRICS.get(name, name)] = values
    history["metrics"] = metrics
    return history


def save_model(model, path):
    temporary = path.with_name("model.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def file_sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
