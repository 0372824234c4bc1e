"""Labelled sequences: text classification and numeric sequence classification from files.

- :func:`from_labelled_text`: a CSV with a text and a label column (or a tab-separated file,
  or a folder with one sub-folder of text files per class), streamed like
  :func:`~kzoo.datasets.from_text_pairs`: one checking pass counts the train split's tokens
  and labels, then a ``tf.data`` pipeline reads the file again.
- :func:`from_labelled_sequences`: a ``.npz`` of arrays and labels, or a CSV whose rows are
  sequences (one column per step) with a label column; held in memory.

An example's split is a hash of its content (a text's words; a sequence's values), so the
same example never sits in two splits and editing other rows moves nothing. Class ids are the
train split's labels in sorted order; a label that the validation or test split holds but the
train split does not is an error (a model could never predict it).
"""

import dataclasses
import hashlib
import itertools
import pathlib

import numpy as np
import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.files import lines as file_lines
from kzoo.datasets.files.errors import DataFileError
from kzoo.datasets.files.splits import BUCKETS, DEFAULT_FRACTIONS, check_fractions, \
    split_index, split_number
from kzoo.datasets.files.text_pairs import file_format_of
from kzoo.datasets.files.vocabulary import DEFAULT_CAPACITY, BoundedCounter
from kzoo.layers.text import LEVELS, STANDARDIZE, TokenVectorizer

_SCAN_BATCH = 4096
_SCANS = {}
_TEXT_SUFFIXES = (".txt", ".text", ".md", "")


def from_labelled_text(path, split="train", *, text_column="text", label_column="label",
                       file_format=None, header=None, level="word",
                       standardize="lower_and_strip_punctuation", max_length=256,
                       vocab_size=20000, min_count=1, split_fractions=DEFAULT_FRACTIONS,
                       skip_bad_lines=False, max_table_size=DEFAULT_CAPACITY, batch_size=32,
                       shuffle=None, seed=0):
    """Loads labelled texts as classification batches and a ``DatasetInfo``, like ``load``.

    Batches are ``(token_ids, class_id)`` (ids 0-padded, at most ``max_length`` tokens), for
    the many-to-one models (``info.model_config``: ``vocab_size``, ``num_classes``).

    Args:
        path: a CSV file with a header naming ``text_column`` and ``label_column``; a
            tab-separated file (``.tsv``, ``.txt``: columns ``text_column`` and
            ``label_column`` by index, default 0 and 1, unless ``header=True``); or a folder
            holding one sub-folder per class (its name is the label) of text files, one
            example each.
        split: ``"train"``, ``"validation"`` or ``"test"`` (default ``"train"``).
        text_column: the text's column, a header name or 0-based index (default ``"text"``;
            a tab-separated file without header: 0).
        label_column: the label's column, the same way (default ``"label"``; without header:
            1).
        file_format: ``"tsv"`` or ``"csv"``; None (default): from the extension.
        header: whether the first line names the columns; None (default): True for CSV.
        level: ``"word"`` (default) or ``"char"``.
        standardize: ``"lower_and_strip_punctuation"`` (default), ``"lower"`` or None.
        max_length: the tokens kept of each text, from its start (default 256; None: all).
        vocab_size: the largest vocabulary, the 4 reserved ids included (default 20000; None:
            every token seen ``min_count`` times).
        min_count: tokens seen fewer times in the train split become unknown (default 1).
        split_fractions: train, validation and test shares (default ``(0.8, 0.1, 0.1)``).
        skip_bad_lines: skip and count lines with a wrong number of columns (default False).
        max_table_size: the most distinct tokens the counter holds (default 200000).
        batch_size: examples per batch (default 32).
        shuffle: shuffle (seeded, every epoch); None (default): the train split only.
        seed: the shuffle's seed (default 0).

    Returns:
        A tuple ``(data, info)``; ``info.class_names`` names each class id,
        ``info.baselines["majority_accuracy"]`` is the accuracy on this split of always
        answering the train split's most frequent class.

    Raises:
        DataFileError: naming the file and line: as :func:`~kzoo.datasets.from_text_pairs`,
            and a label of the validation or test split that the train split lacks, a split
            that would be empty, fewer than 2 classes, a class folder without files.
        ValueError: an option that is not valid.

    Example:

    ```python
    import pathlib
    import kzoo.datasets as kd

    pathlib.Path("reviews.csv").write_text(
        "text,label\\n" + "".join(f"great film {i},good\\nawful plot {i},bad\\n"
                                   for i in range(20)))
    data, info = kd.from_labelled_text("reviews.csv", batch_size=4)
    print(info.class_names, info.model_config)   # ('bad', 'good') {'vocab_size': ..., ...}
    ```
    """
    where = "from_labelled_text"
    check_choice(where, "split", split, core.SPLITS)
    check_choice(where, "level", level, LEVELS)
    check_choice(where, "standardize", standardize, STANDARDIZE)
    check_positive_int(where, "max_length", max_length, allow_none=True)
    check_positive_int(where, "vocab_size", vocab_size, allow_none=True, minimum=5)
    check_positive_int(where, "min_count", min_count)
    check_positive_int(where, "max_table_size", max_table_size, minimum=1000)
    check_positive_int(where, "batch_size", batch_size)
    fractions = check_fractions(where, split_fractions)
    path = pathlib.Path(path)
    if path.is_dir():
        source = _FolderTexts(path)
        file_format = "folder"
    else:
        path = file_lines.check_file(path)
        file_format = file_format_of(path, file_format, where)
        if header is None:
            header = file_format == "csv"
        if not header:
            text_column = 0 if text_column == "text" else text_column
            label_column = 1 if label_column == "label" else label_column
        source = file_lines.TwoColumns(path, file_format, bool(header), text_column,
                                       label_column, bool(skip_bad_lines),
                                       roles=("text", "label"))
    options = {"path": str(path), "text_column": text_column, "label_column": label_column,
               "file_format": file_format, "header": header, "level": level,
               "standardize": standardize, "max_length": max_length, "vocab_size": vocab_size,
               "min_count": min_count, "split_fractions": fractions,
               "skip_bad_lines": bool(skip_bad_lines), "max_table_size": max_table_size}
    scan = _scan_texts(path, source, options)
    count = scan.rows[split]
    if count == 0:
        raise DataFileError(path, f"the {split} split would be empty: the {sum(scan.rows.values())}"
                                  f" examples split {scan.rows} with split_fractions "
                                  f"{fractions}")
    vectorizer = TokenVectorizer(scan.tokens.vocabulary(max_size=vocab_size,
                                                        min_count=min_count),
                                 level=level, standardize=standardize, max_length=max_length,
                                 name="text_vectorizer")
    class_names = scan.class_names
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(class_names),
                                            tf.range(len(class_names), dtype=tf.int32)), -1)
    number = split_number(split)

    def to_ids(texts, labels):
        keep = tf.equal(split_index(texts, standardize, fractions), number)
        ids = tf.RaggedTensor.from_tensor(vectorizer(tf.boolean_mask(texts, keep)), padding=0)
        return ids, table.lookup(tf.strings.strip(tf.boolean_mask(labels, keep)))

    examples = file_lines.unbatch_rows(
        source.batches().map(to_ids, num_parallel_calls=tf.data.AUTOTUNE))
    data = core.finish(examples, batch_size=batch_size,
                       shuffle=split == "train" if shuffle is None else bool(shuffle),
                       seed=int(seed), num_examples=count,
                       bucket_length=lambda x, y: tf.shape(x)[0])
    majority = scan.labels["train"].most_common(1)[0][0]
    info = core.DatasetInfo(
        name=path.name, split=split, pattern="many_to_one",
        suggested_models=("many_to_one_bi_lstm", "many_to_one_lstm", "many_to_one_gru"),
        model_config={"vocab_size": vectorizer.vocabulary_size,
                      "num_classes": len(class_names)},
        options=options, num_examples=count,
        vocabularies={"inputs": vectorizer.get_vocabulary()},
        vectorizers={"inputs": vectorizer}, class_names=tuple(class_names),
        baselines={"majority_accuracy": scan.labels[split][majority] / count},
        statistics={"rows": dict(scan.rows), "skipped_lines": scan.skipped_lines},
        description=f"{path.name}: texts ({level} level) -> {len(class_names)} classes")
    return data, info


@dataclasses.dataclass
class _TextScan:
    rows: dict
    labels: dict
    class_names: list
    tokens: BoundedCounter
    skipped_lines: int


def _scan_texts(path, source, options):
    key = (file_lines.file_version(path), repr(sorted(options.items())))
    if key not in _SCANS:
        _SCANS.clear()
        _SCANS[key] = _count_texts(path, source, options)
    scan = _SCANS[key]
    if isinstance(source, file_lines.TwoColumns) and source.columns is None:
        source.columns, source.num_fields, source.exact = scan.layout
    return scan


def _count_texts(path, source, options):
    import collections

    tokens = BoundedCounter(options["max_table_size"])
    labels = {split: collections.Counter() for split in core.SPLITS}
    first_line = {}
    rows = source.rows()
    while True:
        batch = list(itertools.islice(rows, _SCAN_BATCH))
        if not batch:
            break
        splits = split_index(tf.constant([t for t, _ in batch], tf.string),
                             options["standardize"], options["split_fractions"]).numpy()
        for (text, label), number in zip(batch, splits):
            label = label.strip()
            labels[core.SPLITS[number]][label] += 1
            first_line.setdefault((core.SPLITS[number], label), text)
        tokens.update_tokens([t for (t, _), s in zip(batch, splits) if s == 0],
                             options["level"], options["standardize"])
    train_labels = set(labels["train"])
    for split in ("validation", "test"):
        unseen = sorted(set(labels[split]) - train_labels)
        if unseen:
            example = first_line[(split, unseen[0])][:60]
            raise DataFileError(path, f"label(s) {unseen} appear only outside the train split "
                                      f"(in {split}, e.g. with text {example!r}): a model "
                                      f"never learns them; add train examples, or remove "
                                      f"those rows")
    if len(train_labels) < 2:
        raise DataFileError(path, f"the train split has {len(train_labels)} label(s) "
                                  f"{sorted(train_labels)}; classification needs at least 2")
    scan = _TextScan(rows={s: sum(c.values()) for s, c in labels.items()}, labels=labels,
                     class_names=sorted(train_labels), tokens=tokens,
                     skipped_lines=getattr(source, "skipped", 0))
    scan.layout = (getattr(source, "columns", None), getattr(source, "num_fields", None),
                   getattr(source, "exact", False))
    return scan


class _FolderTexts:
    """The texts of a folder with one sub-folder per class, as ``TwoColumns`` gives rows."""

    def __init__(self, path):
        self.path = path
        classes = sorted(p for p in path.iterdir() if p.is_dir() and not
                         p.name.startswith("."))
        if not classes:
            raise DataFileError(path, "no class folder: give a folder holding one sub-folder "
                                      "of text files per class")
        self.files = []
        for folder in classes:
            files = sorted(f for f in folder.iterdir() if f.is_file() and
                           not f.name.startswith(".") and f.suffix.lower() in _TEXT_SUFFIXES)
            if not files:
                raise DataFileError(folder, "a class folder without text files (.txt)")
            self.files += [(str(f), folder.name) for f in files]
        self.skipped = 0

    def rows(self):
        for name, label in self.files:
            file = pathlib.Path(name)
            try:
                text = file.read_bytes().decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataFileError(file, f"not UTF-8 text (byte at {error.start + 1}); save "
                                          f"the file as UTF-8") from None
            yield text.removeprefix("\ufeff"), label

    def batches(self, batch=file_lines.LINE_BATCH):
        names, labels = zip(*self.files)
        files = tf.data.Dataset.from_tensor_slices((list(names), list(labels)))
        return files.map(lambda name, label: (tf.strings.regex_replace(
            tf.io.read_file(name), "^\ufeff", ""), label),
                         num_parallel_calls=tf.data.AUTOTUNE).batch(batch)


# -- numeric sequences ----------------------------------------------------------------------------
def from_labelled_sequences(path, split="train", *, label_column="label", inputs_key="x",
                            labels_key="y", split_fractions=DEFAULT_FRACTIONS, batch_size=32,
                            shuffle=None, seed=0):
    """Loads labelled numeric sequences as classification batches and a ``DatasetInfo``.

    Batches are ``(sequence, class_id)``, sequences ``(T, F)`` float32 as in the file (raw);
    ``info.statistics`` holds the train split's per-feature ``input_mean`` and ``input_std``,
    which ``kzoo.datasets.with_scaling`` puts inside a model.

    Args:
        path: a ``.npz`` file holding ``inputs_key`` (``(N, T)`` or ``(N, T, F)`` numbers) and
            ``labels_key`` (``(N,)`` ints or strings); or a CSV file with a header, one
            sequence per row: ``label_column`` and one column per step (in order).
        split: ``"train"``, ``"validation"`` or ``"test"`` (default ``"train"``).
        label_column: the CSV's label column (default ``"label"``).
        inputs_key: the ``.npz`` array of sequences (default ``"x"``).
        labels_key: the ``.npz`` array of labels (default ``"y"``).
        split_fractions: train, validation and test shares (default ``(0.8, 0.1, 0.1)``); an
            example's split is a hash of its values.
        batch_size: examples per batch (default 32).
        shuffle: shuffle (seeded, every epoch); None (default): the train split only.
        seed: the shuffle's seed (default 0).

    Returns:
        A tuple ``(data, info)`` (``model_config``: ``input_dim``, ``num_classes``;
        ``class_names``; ``baselines["majority_accuracy"]``).

    Raises:
        DataFileError: naming the file (and line, column): a missing key or column, arrays of
            other lengths, a non-numeric cell, a missing value, a label only outside the train
            split, an empty split.
        ValueError: an option that is not valid.

    Example:

    ```python
    import numpy as np
    import kzoo.datasets as kd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype("float32")
    np.savez("waves.npz", x=x, y=(x.sum(axis=1) > 0).astype("int64"))
    data, info = kd.from_labelled_sequences("waves.npz", batch_size=8)
    inputs, labels = next(iter(data))
    print(inputs.shape, info.class_names)        # (8, 5, 1) ('0', '1')
    ```
    """
    where = "from_labelled_sequences"
    check_choice(where, "split", split, core.SPLITS)
    check_positive_int(where, "batch_size", batch_size)
    fractions = check_fractions(where, split_fractions)
    path = file_lines.check_file(path)
    if path.suffix.lower() == ".npz":
        inputs, labels = _read_npz(path, inputs_key, labels_key)
    else:
        inputs, labels = _read_sequence_csv(path, label_column)
    if inputs.ndim == 2:
        inputs = inputs[:, :, None]
    splits = np.array([_split_of_values(row, fractions) for row in inputs], "int64")
    label_text = np.array([str(v) for v in labels.tolist()])
    by_split = {name: label_text[splits == i] for i, name in enumerate(core.SPLITS)}
    train_labels = set(by_split["train"].tolist())
    for name in ("validation", "test"):
        unseen = sorted(set(by_split[name].tolist()) - train_labels)
        if unseen:
            raise DataFileError(path, f"label(s) {unseen} appear only outside the train split "
                                      f"(in {name}): a model never learns them")
    if len(train_labels) < 2:
        raise DataFileError(path, f"the train split has {len(train_labels)} label(s); "
                                  f"classification needs at least 2")
    class_names = _sorted_labels(train_labels)
    number = split_number(split)
    chosen = splits == number
    count = int(chosen.sum())
    if count == 0:
        raise DataFileError(path, f"the {split} split would be empty: the {len(inputs)} "
                                  f"sequences split {[int((splits == i).sum()) for i in range(3)]}"
                                  f" with split_fractions {fractions}")
    train = inputs[splits == 0]
    mean = train.reshape(-1, train.shape[-1]).mean(axis=0)
    std = train.reshape(-1, train.shape[-1]).std(axis=0)
    std = np.where(std > 0, std, 1.0)
    ids = np.array([class_names.index(v) for v in label_text[chosen]], "int32")
    majority = max(class_names, key=lambda c: (by_split["train"] == c).sum())
    data = core.finish(tf.data.Dataset.from_tensor_slices((inputs[chosen], ids)),
                       batch_size=batch_size,
                       shuffle=split == "train" if shuffle is None else bool(shuffle),
                       seed=int(seed), num_examples=count)
    info = core.DatasetInfo(
        name=path.name, split=split, pattern="many_to_one",
        suggested_models=("many_to_one_gru", "many_to_one_lstm", "many_to_one_bi_lstm"),
        model_config={"input_dim": int(inputs.shape[-1]), "num_classes": len(class_names)},
        options={"path": str(path), "label_column": label_column, "inputs_key": inputs_key,
                 "labels_key": labels_key, "split_fractions": fractions},
        num_examples=count, class_names=tuple(class_names),
        baselines={"majority_accuracy": float((by_split[split] == majority).mean())},
        statistics={"input_mean": [float(v) for v in mean],
                    "input_std": [float(v) for v in std],
                    "rows": {name: int((splits == i).sum())
                             for i, name in enumerate(core.SPLITS)}},
        description=f"{path.name}: sequences of {inputs.shape[1]} steps -> "
                    f"{len(class_names)} classes")
    return data, info


def _sorted_labels(labels):
    # Integer labels sort as numbers (2 before 10), the rest as text.
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


def _split_of_values(row, fractions):
    digest = hashlib.blake2b(np.ascontiguousarray(row, "float32").tobytes(), digest_size=8)
    bucket = int.from_bytes(digest.digest(), "little") % BUCKETS
    if bucket < round(fractions[0] * BUCKETS):
        return 0
    return 1 if bucket < round((fractions[0] + fractions[1]) * BUCKETS) else 2


def _read_npz(path, inputs_key, labels_key):
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataFileError(path, f"not a readable .npz file ({error})") from None
    with arrays:
        missing = [k for k in (inputs_key, labels_key) if k not in arrays.files]
        if missing:
            raise DataFileError(path, f"no array {missing[0]!r}; arrays found: "
                                      f"{', '.join(arrays.files)} (inputs_key=, labels_key= "
                                      f"name them)")
        inputs, labels = arrays[inputs_key], arrays[labels_key]
    if inputs.ndim not in (2, 3) or not np.issubdtype(inputs.dtype, np.number):
        raise DataFileError(path, f"{inputs_key!r} must be numbers shaped (N, T) or (N, T, F), "
                                  f"got {inputs.dtype} {inputs.shape}")
    if labels.ndim != 1 or len(labels) != len(inputs):
        raise DataFileError(path, f"{labels_key!r} must hold one label per sequence: shape "
                                  f"({len(inputs)},), got {labels.shape}")
    if not np.isfinite(inputs).all():
        where = np.argwhere(~np.isfinite(inputs))[0].tolist()
        raise DataFileError(path, f"{inputs_key!r} holds a missing or infinite value at index "
                                  f"{tuple(where)}")
    return inputs.astype("float32"), labels


def _read_sequence_csv(path, label_column):
    import csv

    numbered = file_lines.decoded_lines(path)
    _, first = next(numbered)
    header = next(csv.reader([first]))
    label_index = file_lines.field_lookup(path, header, label_column, "label")
    rows, labels = [], []
    for number, text in numbered:
        fields = next(csv.reader([text]))
        if len(fields) != len(header):
            raise DataFileError(path, f"{len(fields)} column(s), expected {len(header)} as in "
                                      f"the header", line=number)
        row = []
        for index, cell in enumerate(fields):
            if index == label_index:
                continue
            try:
                value = float(cell)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                raise DataFileError(path, f"{cell!r} is not a number", line=number,
                                    column=header[index])
            row.append(value)
        rows.append(row)
        labels.append(fields[label_index].strip())
    if not rows:
        raise DataFileError(path, "the file has a header but no row of data")
    return np.asarray(rows, "float32"), np.asarray(labels)
