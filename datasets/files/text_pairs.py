"""``from_text_pairs``: a translator's data from a file of sentence pairs.

Three layouts: tab-separated lines ``source<TAB>target[<TAB>more...]`` (the Tatoeba / Anki
format of the Keras translation examples; extra columns are ignored), a CSV file whose header
names the columns, or two line-aligned files (line i of one translates line i of the other).
The file is streamed twice and never held in memory: one pass checks every line and counts the
train split's tokens (:mod:`kzoo.datasets.files.vocabulary`), then a ``tf.data`` pipeline reads
it again for every epoch.
"""

import dataclasses
import itertools
import pathlib

import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.files import lines as file_lines
from kzoo.datasets.files.errors import DataFileError
from kzoo.datasets.files.splits import DEFAULT_FRACTIONS, check_fractions, split_index, \
    split_number
from kzoo.datasets.files.vocabulary import DEFAULT_CAPACITY, BoundedCounter, token_counts
from kzoo.layers.text import LEVELS, STANDARDIZE, TokenVectorizer

_SCAN_BATCH = 16384
_SCANS = {}     # the checking pass of a file, by (file identity, options): one per process
_SUFFIX_FORMATS = {".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".csv": "csv"}


def from_text_pairs(path, split="train", *, batch_size=32, shuffle=None, seed=0,
                    target_path=None, file_format=None, source_column=None,
                    target_column=None, header=None, level=None, source_level="word",
                    target_level="word", standardize="lower_and_strip_punctuation",
                    max_length=None, vocab_size=None, source_vocab_size=None,
                    target_vocab_size=None, min_count=1, split_fractions=DEFAULT_FRACTIONS,
                    skip_bad_lines=False, max_table_size=DEFAULT_CAPACITY):
    """Loads a file of sentence pairs as seq2seq batches and a ``DatasetInfo``, like ``load``.

    The result is what ``kzoo.datasets.load("number_words")`` gives: batches of
    ``((source_ids, target_in_ids), target_out_ids)`` (``target_in = [1, y...]``,
    ``target_out = [y..., 2]``, 0-padded) and an info with the vocabularies, the
    ``TokenVectorizer`` s (a seq2seq model built with them carries its vocabularies, so its
    export has the ``translate`` signature), ``model_config`` and ``suggested_models``.

    Splits: an example's split is a hash of its source's words (after ``standardize``), so
    editing or appending lines moves no other example, and a sentence that appears twice sits
    in one split only. The vocabularies come from the train split alone, most frequent tokens
    first (ties alphabetical), counted in one bounded-memory pass over the file.

    Args:
        path: the file: tab-separated (``.tsv``, ``.txt``, ``.tab``), or ``.csv``; with
            ``target_path``, the file of source sentences, one a line.
        split: ``"train"``, ``"validation"`` or ``"test"`` (default ``"train"``).
        batch_size: examples per batch (default 32).
        shuffle: shuffle the examples (seeded, every epoch); None (default): the train split
            only.
        seed: the shuffle's seed (default 0).
        target_path: the file of target sentences, line-aligned with ``path``; None (default):
            both sides are columns of ``path``.
        file_format: ``"tsv"`` or ``"csv"``; None (default): from the file's extension
            (``.csv`` is CSV, anything else tab-separated).
        source_column: the source's column: a name of the header, or a 0-based index; None
            (default): column 0.
        target_column: the target's column, the same way; None (default): column 1.
        header: whether the first line names the columns; None (default): True for CSV, False
            for tab-separated files.
        level: ``"word"`` or ``"char"`` for both sides; None (default) leaves them to
            ``source_level`` and ``target_level``.
        source_level: the source's tokens: ``"word"`` (default: split on whitespace) or
            ``"char"`` (Unicode characters).
        target_level: the target's tokens, the same way (default ``"word"``).
        standardize: ``"lower_and_strip_punctuation"`` (default), ``"lower"`` or None (the
            text as it is), for both sides.
        max_length: the tokens kept of each side, from the start; None (default): all.
        vocab_size: the largest vocabulary of each side, the 4 reserved ids included; None
            (default): every token counted at least ``min_count`` times.
        source_vocab_size: the same for the source side alone (it wins over ``vocab_size``).
        target_vocab_size: the same for the target side alone.
        min_count: tokens seen fewer times in the train split become unknown (default 1).
        split_fractions: the train, validation and test shares, summing to 1 (default
            ``(0.8, 0.1, 0.1)``).
        skip_bad_lines: skip lines with too few columns and count them
            (``info.statistics["skipped_lines"]``) instead of failing (default False).
        max_table_size: the most distinct tokens a side's counter holds while it reads
            (default 200000); beyond, the rarest are pruned (an approximation of the rarest
            counts: :mod:`kzoo.datasets.files.vocabulary`).

    Returns:
        A tuple ``(data, info)``: a ``tf.data.Dataset`` of batches and a ``DatasetInfo``
        (``pattern="seq2seq"``; ``statistics``: ``rows`` per split and ``skipped_lines``).

    Raises:
        DataFileError: (a ``ValueError``) naming the file and line: a missing or empty file, a
            line that is not UTF-8, a line with too few columns (or a CSV line with another
            number of columns than its header), a header without the named column (listing
            the columns found), two files with different numbers of lines, or a split that
            would be empty.
        ValueError: an option that is not valid.

    Example:

    ```python
    import kzoo
    import kzoo.datasets as kd

    data, info = kd.from_text_pairs(kd.example_file("pairs.tsv"), batch_size=16)
    (source, target_in), target_out = next(iter(data))
    print(info.suggested_models[0], info.num_examples, source.shape[0])
    model = kzoo.build("seq2seq_attention", **info.model_config, units=8,
                       vocabularies=info.vectorizers)   # model.translate(["good morning"])
    ```
    """
    options = _options(path, target_path=target_path, file_format=file_format,
                       source_column=source_column, target_column=target_column, header=header,
                       level=level, source_level=source_level, target_level=target_level,
                       standardize=standardize, max_length=max_length, vocab_size=vocab_size,
                       source_vocab_size=source_vocab_size,
                       target_vocab_size=target_vocab_size, min_count=min_count,
                       split_fractions=split_fractions, skip_bad_lines=skip_bad_lines,
                       max_table_size=max_table_size)
    check_choice("from_text_pairs", "split", split, core.SPLITS)
    check_positive_int("from_text_pairs", "batch_size", batch_size)
    scan = scan_text_pairs(options)
    count = scan.rows[split]
    if count == 0:
        raise DataFileError(options.path, f"the {split} split would be empty: the "
                                          f"{scan.total} pairs split {scan.rows} with "
                                          f"split_fractions {options.split_fractions}; use "
                                          f"more lines or other fractions")
    vectorizers = {}
    for side, counter, level_, size in (
            ("source", scan.source_counts, options.source_level, options.source_vocab_size),
            ("target", scan.target_counts, options.target_level, options.target_vocab_size)):
        vectorizers[side] = TokenVectorizer(
            counter.vocabulary(max_size=size, min_count=options.min_count), level=level_,
            standardize=options.standardize, max_length=options.max_length,
            name=f"{side}_vectorizer")
    source, target = vectorizers["source"], vectorizers["target"]

    number = split_number(split)

    def to_ids(sources, targets):
        # A batch of lines at a time: the split's rows, their ids as ragged rows (no padding
        # beyond each row's length), unbatched below into one example per pair.
        keep = tf.equal(split_index(sources, options.standardize, options.split_fractions),
                        number)
        source_ids = tf.RaggedTensor.from_tensor(source(tf.boolean_mask(sources, keep)),
                                                 padding=0)
        target_ids = tf.RaggedTensor.from_tensor(target(tf.boolean_mask(targets, keep)),
                                                 padding=0)
        rows = target_ids.nrows()

        def column(token_id):
            return tf.RaggedTensor.from_tensor(
                tf.fill(tf.stack([rows, tf.constant(1, rows.dtype)]),
                        tf.constant(token_id, target_ids.dtype)))

        return ((source_ids, tf.concat([column(1), target_ids], axis=1)),
                tf.concat([target_ids, column(2)], axis=1))

    examples = pair_batches(options, scan).map(to_ids, num_parallel_calls=tf.data.AUTOTUNE)
    data = core.finish(file_lines.unbatch_rows(examples), batch_size=batch_size,
                       shuffle=split == "train" if shuffle is None else bool(shuffle),
                       seed=int(seed), num_examples=count,
                       bucket_length=lambda x, y: tf.shape(y)[0])
    name = options.path.name if options.target_path is None else \
        f"{options.path.name}+{options.target_path.name}"
    info = core.DatasetInfo(
        name=name, split=split, pattern="seq2seq",
        suggested_models=("seq2seq_attention", "seq2seq_luong", "seq2seq_lstm"),
        model_config={"source_vocab_size": source.vocabulary_size,
                      "target_vocab_size": target.vocabulary_size, "start_id": 1, "end_id": 2},
        options=options.public(), num_examples=count,
        vocabularies={"source": source.get_vocabulary(), "target": target.get_vocabulary()},
        vectorizers=vectorizers,
        statistics={"rows": dict(scan.rows), "skipped_lines": scan.skipped_lines},
        description=f"sentence pairs of {name} ({options.source_level} -> "
                    f"{options.target_level} level)")
    return data, info


# -- options --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PairOptions:
    path: pathlib.Path
    target_path: pathlib.Path
    file_format: str
    source_column: object
    target_column: object
    header: bool
    source_level: str
    target_level: str
    standardize: str
    max_length: int
    source_vocab_size: int
    target_vocab_size: int
    min_count: int
    split_fractions: tuple
    skip_bad_lines: bool
    max_table_size: int

    def public(self):
        """The options as ``DatasetInfo.options`` shows them (paths as str)."""
        values = dataclasses.asdict(self)
        values["path"] = str(self.path)
        values["target_path"] = None if self.target_path is None else str(self.target_path)
        return values


def file_format_of(path, file_format, where):
    """``file_format`` checked, or the format of ``path``'s extension."""
    if file_format is None:
        return _SUFFIX_FORMATS.get(pathlib.Path(path).suffix.lower(), "tsv")
    return check_choice(where, "file_format", file_format, file_lines.FORMATS)


def _options(path, *, target_path, file_format, source_column, target_column, header, level,
             source_level, target_level, standardize, max_length, vocab_size,
             source_vocab_size, target_vocab_size, min_count, split_fractions,
             skip_bad_lines, max_table_size):
    where = "from_text_pairs"
    path = file_lines.check_file(path)
    if target_path is not None:
        target_path = file_lines.check_file(target_path)
    file_format = file_format_of(path, file_format, where)
    if level is not None:
        source_level = target_level = check_choice(where, "level", level, LEVELS)
    check_choice(where, "source_level", source_level, LEVELS)
    check_choice(where, "target_level", target_level, LEVELS)
    check_choice(where, "standardize", standardize, STANDARDIZE)
    check_positive_int(where, "max_length", max_length, allow_none=True)
    for name, value in (("vocab_size", vocab_size), ("source_vocab_size", source_vocab_size),
                        ("target_vocab_size", target_vocab_size)):
        check_positive_int(where, name, value, allow_none=True, minimum=5)
    check_positive_int(where, "min_count", min_count)
    check_positive_int(where, "max_table_size", max_table_size, minimum=1000)
    if header is None:
        header = file_format == "csv" and target_path is None
    if target_path is not None and (source_column is not None or target_column is not None):
        raise ValueError(f"{where}: `source_column` and `target_column` are for one file of "
                         f"pairs, not with `target_path`")
    return PairOptions(
        path=path, target_path=target_path, file_format=file_format,
        source_column=0 if source_column is None else source_column,
        target_column=1 if target_column is None else target_column, header=bool(header),
        source_level=source_level, target_level=target_level, standardize=standardize,
        max_length=max_length,
        source_vocab_size=source_vocab_size if source_vocab_size is not None else vocab_size,
        target_vocab_size=target_vocab_size if target_vocab_size is not None else vocab_size,
        min_count=min_count, split_fractions=check_fractions(where, split_fractions),
        skip_bad_lines=bool(skip_bad_lines), max_table_size=max_table_size)


# -- the checking pass ----------------------------------------------------------------------------
@dataclasses.dataclass
class PairScan:
    """What one pass over the file found: rows per split, skipped lines, the reader of a
    one-file layout (its columns resolved) and the train split's token counts."""

    rows: dict
    skipped_lines: int
    reader: object
    source_counts: BoundedCounter
    target_counts: BoundedCounter

    @property
    def total(self):
        return sum(self.rows.values())


def scan_text_pairs(options):
    """The checking pass over the file(s) of ``options`` (cached per file version)."""
    key = (file_lines.file_version(options.path), file_lines.file_version(options.target_path),
           options)
    if key not in _SCANS:
        _SCANS.clear()      # one file's counts at a time: a process reads one data file
        _SCANS[key] = _scan(options)
    return _SCANS[key]


def _scan(options):
    source_counts = BoundedCounter(options.max_table_size)
    target_counts = BoundedCounter(options.max_table_size)
    rows = dict.fromkeys(core.SPLITS, 0)
    reader = None
    if options.target_path is None:
        reader = file_lines.TwoColumns(options.path, options.file_format, options.header,
                                       options.source_column, options.target_column,
                                       options.skip_bad_lines, roles=("source", "target"))
        pairs = reader.rows()
    else:
        pairs = _two_file_pairs(options)
    while True:
        batch = list(itertools.islice(pairs, _SCAN_BATCH))
        if not batch:
            break
        sources = tf.constant([s for s, _ in batch], tf.string)
        splits = split_index(sources, options.standardize, options.split_fractions)
        train = tf.equal(splits, 0)
        splits = splits.numpy()
        for number, split in enumerate(core.SPLITS):
            rows[split] += int((splits == number).sum())
        for counter, texts, level in (
                (source_counts, sources, options.source_level),
                (target_counts, tf.constant([t for _, t in batch], tf.string),
                 options.target_level)):
            unique, counts = token_counts(texts, level, options.standardize, keep=train)
            counter.add(unique.numpy(), counts.numpy())
    return PairScan(rows=rows, skipped_lines=reader.skipped if reader else 0, reader=reader,
                    source_counts=source_counts, target_counts=target_counts)


def _two_file_pairs(options):
    counted = {"pairs": 0}
    sentinel = object()
    sources = (text for _, text in file_lines.all_lines(options.path))
    targets = (text for _, text in file_lines.all_lines(options.target_path))
    for number, (source, target) in enumerate(
            itertools.zip_longest(sources, targets, fillvalue=sentinel), start=1):
        if source is sentinel or target is sentinel:
            shorter = options.path if source is sentinel else options.target_path
            raise DataFileError(shorter, f"ends at line {number - 1} while the other file "
                                         f"goes on: the source and target files must have "
                                         f"one line per pair")
        if source and target:
            counted["pairs"] += 1
            yield source, target
    if not counted["pairs"]:
        raise DataFileError(options.path, "no pair of non-empty lines (the files are blank)")


# -- the training pipeline ------------------------------------------------------------------------
def pair_batches(options, scan):
    """A ``tf.data`` of ``(sources, targets)`` string vectors streamed from the file(s): the
    pairs the checking pass accepted, in file order, a batch of lines at a time."""
    if options.target_path is None:
        return scan.reader.batches()
    lines = tf.data.Dataset.zip(
        tf.data.TextLineDataset(str(options.path)).map(file_lines.clean_line),
        tf.data.TextLineDataset(str(options.target_path)).map(file_lines.clean_line))

    def non_empty(sources, targets):
        keep = tf.logical_and(tf.strings.length(sources) > 0, tf.strings.length(targets) > 0)
        return tf.boolean_mask(sources, keep), tf.boolean_mask(targets, keep)

    return lines.batch(file_lines.LINE_BATCH).map(non_empty,
                                                  num_parallel_calls=tf.data.AUTOTUNE)
