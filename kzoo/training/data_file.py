"""A run trained on the user's own file: what ``kzoo train NAME --data FILE`` records and reads.

The run's config.json keeps ``data_file``: the file's absolute path, its format and content hash
(SHA-256, read in blocks, so a file of any size hashes in bounded memory; a folder hashes its
files' relative paths and bytes)::

    "data_file": {"path": "/home/me/pairs.tsv", "format": "tsv",
                  "sha256": "9f86d0...", "bytes": 183201}

Every later command reads the file again through ``kzoo.datasets.from_file`` with the run's
options: the splits are a function of the file's content, so ``kzoo evaluate`` and ``kzoo
export`` see the held-out rows training never saw. A rerun or resume on a file whose content
changed is refused (:class:`DataChangedError`) unless asked for (``data_changed_ok``): resuming
on other rows would mix two runs, and the vocabularies would no longer match the weights.
"""

import dataclasses
import hashlib
import os
import pathlib

from kzoo.training.run_dir import hash_into


# The model settings ``train`` uses on a data file unless ``model_config`` says otherwise, by
# the model's pattern. The zoo's defaults are small (units=64) so that every model builds and
# tests fast; on a file of a few thousand sentence pairs that translator reached 0.80 exact
# match in 3 minutes where a hand-written Keras GRU of 256 units reached 0.99, and so did this
# one at 256 units (benchmarks/own_data.py, docs/performance.md).
FILE_MODEL_DEFAULTS = {
    "seq2seq": {"units": 256, "source_embedding_dim": 256, "target_embedding_dim": 256},
}


class DataChangedError(ValueError):
    """The data file of a run changed since the run was trained on it."""


@dataclasses.dataclass(frozen=True)
class DataFile:
    """The user's data file a run trains on, as ``train(..., data=...)`` takes it.

    Attributes:
        path: the file (or folder, for a folder per class), absolute.
        format: the data format of ``kzoo.datasets.from_file`` (``"text_pairs"``,
            ``"series"``, ``"text_classes"``, ``"sequence_classes"``); None: from the path.
        sha256: the content hash, as :func:`data_sha256` computes it.
        size: the bytes hashed.
    """

    path: str
    format: object = None
    sha256: str = ""
    size: int = 0

    @classmethod
    def of(cls, path, format=None):
        """Describes ``path`` as it is now (its hash is computed here).

        Args:
            path: a file or folder.
            format: the data format of ``kzoo.datasets.from_file``, or None (from the path).

        Returns:
            A :class:`DataFile`.

        Raises:
            FileNotFoundError: no such file or folder.
        """
        path = pathlib.Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no data file {str(path)!r}")
        digest, size = data_sha256(path)
        return cls(path=str(path.resolve()), format=format, sha256=digest, size=size)

    @classmethod
    def from_record(cls, record):
        """The :class:`DataFile` a run's config.json recorded (its ``data_file``)."""
        return cls(path=record["path"], format=record.get("format"),
                   sha256=record.get("sha256", ""), size=int(record.get("bytes", 0)))

    def record(self):
        """What config.json keeps of the file (its ``data_file``)."""
        return {"path": self.path, "format": self.format, "sha256": self.sha256,
                "bytes": self.size}

    @property
    def name(self):
        """The file's name, for messages."""
        return os.path.basename(self.path)


def file_model_defaults(info):
    """The model settings of :data:`FILE_MODEL_DEFAULTS` for a model, those it takes.

    Args:
        info: the model's ``kzoo.model_info``.

    Returns:
        ``{config key: value}``, possibly empty.
    """
    defaults = FILE_MODEL_DEFAULTS.get(info.pattern, {})
    return {key: value for key, value in defaults.items() if key in info.default_config}


def data_sha256(path):
    """The SHA-256 of a data file's bytes, or of a folder's files (relative path and bytes of
    each, in sorted order), read a block at a time (``run_dir.hash_into``).

    Args:
        path: a file or folder.

    Returns:
        ``(hex digest, bytes hashed)``.
    """
    path = pathlib.Path(path)
    digest = hashlib.sha256()
    size = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file is not path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        size += hash_into(digest, file)
    return digest.hexdigest(), size


def check_unchanged(previous_config, data_file, data_changed_ok=False):
    """Refuses to resume a run on a data file whose content changed since it was recorded.

    Args:
        previous_config: the run directory's config.json (a dict), or None for a new run.
        data_file: the :class:`DataFile` about to be trained on.
        data_changed_ok: resume all the same (the new hash is recorded).

    Raises:
        DataChangedError: the recorded hash differs and ``data_changed_ok`` is false.
    """
    recorded = (previous_config or {}).get("data_file")
    if not recorded or recorded.get("sha256") == data_file.sha256 or data_changed_ok:
        return
    raise DataChangedError(
        f"{data_file.name} changed since this run was trained on it (sha256 "
        f"{recorded.get('sha256', '?')[:12]}... then, {data_file.sha256[:12]}... now); "
        f"pass --data-changed-ok to go on with the new content, or train into a new --out")


def run_data_file(config):
    """The data file a run was trained on.

    Args:
        config: the run's config (``read_run``).

    Returns:
        Its :class:`DataFile`, or None for a run on a named dataset.
    """
    record = config.get("data_file")
    return DataFile.from_record(record) if record else None


def changed_note(data_file):
    """A line saying that a run's data file changed since the run was trained on it.

    Args:
        data_file: the run's :class:`DataFile`.

    Returns:
        The line, or None when the file is unchanged or gone (reading it then raises the
        error that names it).
    """
    path = pathlib.Path(data_file.path)
    if not path.exists():
        return None
    if data_sha256(path)[0] != data_file.sha256:
        return (f"note: {data_file.name} changed since the run was trained on it; its splits "
                f"and vocabularies are read from the file as it is now")
    return None


def load_file_split(data_file, split, *, batch_size, seed=0, shuffle=None, options=None):
    """The batches of one split of a data file, and its ``DatasetInfo``.

    Args:
        data_file: a :class:`DataFile`.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        batch_size: the rows per batch.
        seed: the seed of the shuffle.
        shuffle: None (the train split only), or whether to shuffle.
        options: the reader's options (``kzoo.datasets.from_file``'s keyword arguments).

    Returns:
        ``(batches, info)`` as ``kzoo.datasets.load`` gives them.

    Raises:
        FileNotFoundError: the file is gone.
        ValueError: the reader's error for a bad file or option (it names the file, line and
            column).
    """
    import kzoo.datasets

    if not os.path.exists(data_file.path):
        raise FileNotFoundError(f"the data file {data_file.path!r} is gone")
    return kzoo.datasets.from_file(data_file.path, split, data_format=data_file.format,
                                   batch_size=batch_size, seed=seed, shuffle=shuffle,
                                   **dict(options or {}))
