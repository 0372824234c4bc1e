"""``from_file``: the reader of a file chosen by its extension (or a named format), for the
``kzoo`` command's ``--data``."""

import csv
import pathlib

from kzoo.checks import check_choice
from kzoo.datasets.files import lines as file_lines
from kzoo.datasets.files.classes import from_labelled_sequences, from_labelled_text
from kzoo.datasets.files.series import from_csv
from kzoo.datasets.files.text_pairs import from_text_pairs

READERS = {"text_pairs": from_text_pairs, "series": from_csv,
           "text_classes": from_labelled_text, "sequence_classes": from_labelled_sequences}
DATA_FORMATS = tuple(READERS)
_OPTION_FORMATS = (("series", ("target", "features", "window", "horizon", "time_column",
                               "fill", "task")),
                   ("text_pairs", ("source_column", "target_column", "target_path",
                                   "source_level", "target_level")),
                   ("text_classes", ("text_column",)))


def data_format_of(path, options=None):
    """The data format :func:`from_file` reads ``path`` as (see there for the rules).

    Args:
        path: the file or folder.
        options: the reader options that will be given (they can decide a CSV's format).

    Returns:
        One of ``DATA_FORMATS``: ``"text_pairs"``, ``"series"``, ``"text_classes"``,
        ``"sequence_classes"``.

    Raises:
        DataFileError: a CSV file that is missing, empty or not UTF-8 (its header decides).

    Example:

    ```python
    import kzoo.datasets as kd

    print(kd.data_format_of(kd.example_file("pairs.tsv")))                 # text_pairs
    print(kd.data_format_of("sales.csv", {"target": "units"}))             # series
    ```
    """
    path = pathlib.Path(path)
    options = dict(options or {})
    if path.is_dir():
        return "text_classes"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "sequence_classes"
    if suffix != ".csv":
        return "text_pairs"
    for name, keys in _OPTION_FORMATS:
        if any(key in options for key in keys):
            return name
    header = {name.strip().lower() for name in _header(path)}
    if {"source", "target"} <= header:
        return "text_pairs"
    if {"text", "label"} <= header:
        return "text_classes"
    if options.get("label_column", "label") in header:
        return "sequence_classes"
    return "series"


def _header(path):
    path = file_lines.check_file(path)
    _, first = next(file_lines.decoded_lines(path))
    return next(csv.reader([first]))


def from_file(path, split="train", *, data_format=None, batch_size=32, shuffle=None, seed=0,
              **options):
    """Loads a data file with the reader its format needs: ``(batches, DatasetInfo)``.

    Without ``data_format``, the format comes from the path:

    - a folder: ``"text_classes"`` (one sub-folder of text files per class);
    - ``.npz``: ``"sequence_classes"``;
    - ``.tsv``, ``.txt``, ``.tab`` and any other extension but ``.csv``: ``"text_pairs"``;
    - ``.csv``: from the options first (``target``, ``window``, ``time_column``...:
      ``"series"``; ``source_column``, ``target_path``...: ``"text_pairs"``; ``text_column``:
      ``"text_classes"``), else from the header: ``source`` and ``target`` columns:
      ``"text_pairs"``; ``text`` and ``label``: ``"text_classes"``; ``label``:
      ``"sequence_classes"``; anything else: ``"series"``.

    Args:
        path: the data file (or folder).
        split: ``"train"``, ``"validation"`` or ``"test"`` (default ``"train"``).
        data_format: one of ``"text_pairs"`` (:func:`~kzoo.datasets.from_text_pairs`),
            ``"series"`` (:func:`~kzoo.datasets.from_csv`), ``"text_classes"``
            (:func:`~kzoo.datasets.from_labelled_text`), ``"sequence_classes"``
            (:func:`~kzoo.datasets.from_labelled_sequences`); None (default): from the path.
        batch_size: examples per batch (default 32).
        shuffle: shuffle (seeded, every epoch); None (default): the train split only.
        seed: the shuffle's seed (default 0).
        **options: the reader's own options.

    Returns:
        The reader's ``(data, info)``.

    Raises:
        DataFileError: the reader's errors about the file.
        ValueError: an unknown ``data_format`` or an option the reader does not take (the
            message lists its options).

    Example:

    ```python
    import kzoo.datasets as kd

    data, info = kd.from_file(kd.example_file("series.csv"), target="temp", window=6)
    print(info.pattern, info.model_config)   # many_to_one {'input_dim': 1, ...}
    ```
    """
    if data_format is None:
        data_format = data_format_of(path, options)
    check_choice("from_file", "data_format", data_format, DATA_FORMATS)
    reader = READERS[data_format]
    accepted = reader_options(data_format)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"from_file: {data_format} data has no option(s) {unknown}; its "
                         f"options (with defaults): "
                         f"{', '.join(f'{k}={v!r}' for k, v in accepted.items())}")
    return reader(path, split, batch_size=batch_size, shuffle=shuffle, seed=seed, **options)




def reader_options(data_format):
    """The options of the reader of ``data_format``, with their defaults.

    Args:
        data_format: one of ``DATA_FORMATS``.

    Returns:
        ``{option: default}`` (``batch_size``, ``shuffle`` and ``seed``, common to every
        reader, left out).

    Raises:
        ValueError: an unknown ``data_format``.

    Example:

    ```python
    import kzoo.datasets as kd

    print(kd.reader_options("series")["window"])      # 24
    ```
    """
    import inspect

    check_choice("reader_options", "data_format", data_format, DATA_FORMATS)
    parameters = inspect.signature(READERS[data_format]).parameters
    return {name: p.default for name, p in parameters.items()
            if p.kind is p.KEYWORD_ONLY and name not in ("batch_size", "shuffle", "seed")}
