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

The files this module writes are written atomically (a kill never leaves half a file).
"""

import json
import os
import pathlib
import zipfile

# What makes a run directory a finished run: the `kzoo` command checks for them before it
# imports TensorFlow.
FINISHED_RUN_FILES = ("config.json", "model.keras")

# The settings that define a run: a rerun into the same directory with other values is refused,
# since resuming would mix two runs (``epochs`` may grow: training continues).
IDENTITY_KEYS = ("model", "model_config", "dataset", "dataset_options", "batch_size",
                 "learning_rate", "clipnorm", "seed", "strategy", "tbptt", "steps_per_epoch")

# Metrics renamed since a run was trained: history.json of an older run reads with the new names.
RENAMED_METRICS = {"sequence_accuracy": "token_accuracy"}


def check_finished_run(run_dir):
    """Checks that ``run_dir`` is a finished run directory: config.json and model.keras in it.

    Args:
        run_dir: a path.

    Returns:
        ``run_dir`` as a ``pathlib.Path``.

    Raises:
        FileNotFoundError: no such directory, or one without config.json or model.keras (the
            message says how to train into it).
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {str(run_dir)!r}")
    for name in FINISHED_RUN_FILES:
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a finished run (no {name}); train "
                                    f"into it with `kzoo train NAME --dataset D --out {run_dir}`")
    return run_dir


def read_run(run_dir):
    """Reads the settings of a finished run (its config.json).

    Args:
        run_dir: a finished run directory.

    Returns:
        The dict ``train`` wrote: ``model``, ``model_config``, ``dataset``,
        ``dataset_options``, ``epochs``, ``batch_size``, ``learning_rate``, ``clipnorm``,
        ``seed``, ``strategy``, ``tbptt``, ``steps_per_epoch``, ``kzoo_version`` and
        ``data_options`` (every option the data was made with).

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished run.
        ValueError: config.json is not valid JSON.
    """
    return read_json(check_finished_run(run_dir) / "config.json")


def load_run_model(run_dir):
    """Loads a run's trained model (its model.keras).

    Args:
        run_dir: a run directory.

    Returns:
        The ``keras.Model``, compiled as it was trained.

    Raises:
        FileNotFoundError: there is no model.keras.
        ValueError: model.keras is not a readable .keras file (truncated or corrupted).
    """
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
    """Reads a run's vocabularies (its vocab/*.json).

    Args:
        run_dir: a run directory.

    Returns:
        ``{name: token list}`` (index = id; ``"source"``, ``"target"``, ``"inputs"``...), the
        vocabularies of the dataset the run was trained on; ``{}`` when it had none.
    """
    directory = pathlib.Path(run_dir) / "vocab"
    if not directory.is_dir():
        return {}
    return {path.stem: read_json(path) for path in sorted(directory.glob("*.json"))}


def write_vocabularies(run_dir, vocabularies):
    """Writes a dataset's vocabularies into ``run_dir/vocab``, one JSON token list each.

    Args:
        run_dir: a run directory.
        vocabularies: ``{name: token list or TokenVectorizer}``, or None (nothing written).
    """
    if not vocabularies:
        return
    directory = pathlib.Path(run_dir) / "vocab"
    directory.mkdir(exist_ok=True)
    for name, tokens in dict(vocabularies).items():
        if hasattr(tokens, "get_vocabulary"):
            tokens = tokens.get_vocabulary()
        write_json(directory / f"{name}.json", [str(t) for t in list(tokens)])


def previous_config(run_dir, config):
    """The config.json of an earlier run of the same settings in ``run_dir``, to resume.

    Args:
        run_dir: a run directory.
        config: the settings of the run about to start (what config.json will hold).

    Returns:
        The earlier config (a dict), or None when ``run_dir`` holds none.

    Raises:
        ValueError: ``run_dir`` holds a run whose settings (:data:`IDENTITY_KEYS`) differ.
    """
    previous = read_json(pathlib.Path(run_dir) / "config.json")
    if previous is None:
        return None
    comparable = json.loads(json.dumps(config, default=_json_default))
    changed = [key for key in IDENTITY_KEYS if previous.get(key) != comparable.get(key)]
    if changed:
        raise ValueError(f"{str(run_dir)!r} holds a different run ({', '.join(changed)} "
                         f"differ); pick a new --out or delete it")
    return previous


def backup_epoch(run_dir):
    """The number of epochs ``keras.callbacks.BackupAndRestore`` has saved in run_dir/backup.

    Args:
        run_dir: a run directory.

    Returns:
        An int, 0 without a backup.
    """
    metadata = read_json(pathlib.Path(run_dir) / "backup" / "training_metadata.json", {})
    return int(metadata.get("epoch", 0))


def trained_epochs(run_dir):
    """The epochs a run's model.keras holds.

    Training saves model.keras once its last epoch is backed up; a model.keras older than the
    backup (or none) holds no finished training.

    Args:
        run_dir: a run directory.

    Returns:
        The backup's epochs when model.keras was saved after it, else 0.
    """
    run_dir = pathlib.Path(run_dir)
    model, weights = run_dir / "model.keras", run_dir / "backup" / "latest.weights.h5"
    if not model.is_file() or not weights.is_file() or \
            model.stat().st_mtime_ns < weights.stat().st_mtime_ns:
        return 0
    return backup_epoch(run_dir)


def read_history(run_dir):
    """Reads a run's history.json, with metric names as they are now.

    Args:
        run_dir: a run directory.

    Returns:
        ``{"epochs": [...], "metrics": {name: [one value per epoch]}}`` (empty lists before
        the first epoch ends); a metric renamed since (:data:`RENAMED_METRICS`) under its new
        name.

    Raises:
        ValueError: history.json is not valid JSON.
    """
    history = read_json(pathlib.Path(run_dir) / "history.json", {"epochs": [], "metrics": {}})
    metrics = {}
    for key, values in history.get("metrics", {}).items():
        prefix = "val_" if key.startswith("val_") else ""
        name = key[len(prefix):]
        metrics[prefix + RENAMED_METRICS.get(name, name)] = values
    history["metrics"] = metrics
    return history


def write_history(run_dir, history):
    """Writes a run's history.json (atomically).

    Args:
        run_dir: the run directory.
        history: ``{"epochs": [...], "metrics": {name: [one value per epoch]}}``.
    """
    write_json(pathlib.Path(run_dir) / "history.json", history)


def write_json(path, value):
    """Writes ``value`` as JSON atomically: a kill never leaves half a file.

    Args:
        path: the file.
        value: anything ``json`` writes; arrays become lists, other objects their ``str``.
    """
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, default=_json_default) + "\n")
    os.replace(temporary, path)


def _json_default(value):
    """``json``'s ``default``: an array's list, else the value's ``str``."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_json(path, default=None):
    """Reads a JSON file.

    Args:
        path: the file.
        default: what a missing file reads as.

    Returns:
        The value, or ``default`` when there is no file.

    Raises:
        ValueError: the file is not valid JSON (a truncated file names itself).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); was it truncated?") \
            from error


def save_run_model(model, run_dir):
    """Saves a run's trained model as its model.keras, atomically (written beside it, then
    moved).

    Args:
        model: a ``keras.Model``.
        run_dir: the run directory.
    """
    path = pathlib.Path(run_dir) / "model.keras"
    temporary = path.with_name("model.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def file_sha256(path):
    """The SHA-256 of a file's bytes, as hex.

    Args:
        path: the file.

    Returns:
        64 hexadecimal digits.
    """
    import hashlib

    digest = hashlib.sha256()
    hash_into(digest, path)
    return digest.hexdigest()


def hash_into(digest, path):
    """Feeds a file's bytes to a ``hashlib`` digest, a block at a time (memory stays flat
    whatever the file's size).

    Args:
        digest: a ``hashlib`` object.
        path: the file.

    Returns:
        The bytes read.
    """
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size
