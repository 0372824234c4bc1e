"""Reading a user's text file line by line, in bounded memory, with errors that name the line.

Both readers of a file agree on what a line is: the Python pass that checks the file and counts
its tokens (:func:`decoded_lines`) and the ``tf.data`` pipeline that feeds training
(:func:`text_line_batches`). A line ends at ``\\n`` (a ``\\r`` before it is dropped); an
empty line is skipped; a UTF-8 byte-order mark at the start of the file is dropped.
"""

import csv
import pathlib

import tensorflow as tf

from kzoo.datasets.files.errors import DataFileError

FORMATS = ("tsv", "csv")
_BOM = "\ufeff"


def check_file(path):
    """``path`` as a ``pathlib.Path`` of an existing, non-empty file, else a DataFileError."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataFileError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise DataFileError(path, "the file is empty")
    return path


def file_version(path):
    """What tells one version of a file from another without reading it (its path, size and
    modification time), the key under which a checking pass is cached; None for no path."""
    if path is None:
        return None
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def all_lines(path):
    """``(line number, text)`` of every line of ``path`` (1-based; empty lines too, so two
    files stay aligned), one at a time.

    Raises:
        DataFileError: a line that is not UTF-8, naming the line and the byte.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = raw[error.start:error.start + 1].hex()
                raise DataFileError(path, f"not UTF-8 text (byte 0x{byte} at character "
                                          f"{error.start + 1}); save the file as UTF-8",
                                    line=number) from None
            if number == 1:
                text = text.removeprefix(_BOM)
            yield number, text.rstrip("\n").removesuffix("\r")


def decoded_lines(path):
    """``(line number, text)`` of each non-empty line of ``path`` (1-based), one at a time.

    Raises:
        DataFileError: a line that is not UTF-8 (naming the line and the byte), or a file
            without any non-empty line.
    """
    seen = False
    for number, text in all_lines(path):
        if text:
            seen = True
            yield number, text
    if not seen:
        raise DataFileError(path, "the file has no line of data (it is empty or blank)")


def split_fields(text, file_format):
    """The fields of one line: tab-separated, or one CSV record (quotes as in RFC 4180)."""
    if file_format == "tsv":
        return text.split("\t")
    return next(csv.reader([text]))


LINE_BATCH = 1024


def text_line_batches(path, skip_lines=0, batch=LINE_BATCH):
    """``tf.data`` of vectors of the non-empty lines of ``path`` (as :func:`decoded_lines` sees
    them), streamed from the file, ``batch`` lines at a time (fewer once empty ones are
    dropped), after its first ``skip_lines`` lines. Whole batches keep the per-line cost of
    ``tf.data`` low: a line is a few string ops of a vector, not a pipeline step."""
    lines = tf.data.TextLineDataset(str(path)).skip(skip_lines).batch(batch)
    return lines.map(_non_empty, num_parallel_calls=tf.data.AUTOTUNE)


def unbatch_rows(batches):
    """One example per row of batches of ragged rows, each a dense tensor of its own length
    (``unbatch`` alone gives ragged specs, which batching with padding refuses)."""
    return batches.unbatch().map(lambda *parts: tf.nest.map_structure(tf.identity, parts),
                                 num_parallel_calls=tf.data.AUTOTUNE)


def _non_empty(lines):
    lines = clean_line(lines)
    return tf.boolean_mask(lines, tf.strings.length(lines) > 0)


def clean_line(line):
    line = tf.strings.regex_replace(line, "\r$", "")
    return tf.strings.regex_replace(line, "^\ufeff", "")


def field_lookup(path, header_fields, name, role):
    """The index of column ``name`` (a header name, or an int index) in ``header_fields``."""
    if isinstance(name, int) and not isinstance(name, bool):
        if header_fields is not None and not 0 <= name < len(header_fields):
            raise DataFileError(path, f"the {role} column index {name} is outside the "
                                      f"{len(header_fields)} columns")
        return name
    if header_fields is None:
        raise DataFileError(path, f"the {role} column {name!r} is named, but the file has no "
                                  f"header line (give column numbers, or a CSV with a header)")
    if name not in header_fields:
        found = ", ".join(repr(f) for f in header_fields)
        raise DataFileError(path, f"no {role} column {name!r} in the header; columns found: "
                                  f"{found}", line=1)
    return header_fields.index(name)


class TwoColumns:
    """Two columns of every good line of a TSV or CSV file (sentence pairs, text and label).

    ``rows()`` checks and yields them in Python, counting skipped lines in ``skipped``;
    ``batches()`` streams the same strings through ``tf.data`` (pure TensorFlow for a
    tab-separated file; Python's ``csv`` for CSV, whose quoting TensorFlow's reader does not
    share). Call ``batches()`` after one full ``rows()`` pass has checked the file.

    Args:
        path: the file.
        file_format: ``"tsv"`` or ``"csv"``.
        header: whether the first non-empty line names the columns.
        first, second: each column's header name or 0-based index.
        skip_bad_lines: skip (and count) lines with a wrong number of columns instead of
            raising.
        roles: the two columns' roles, for error messages (e.g. ``("source", "target")``).
    """

    def __init__(self, path, file_format, header, first, second, skip_bad_lines,
                 roles=("first", "second")):
        self.path = path
        self.file_format = file_format
        self.header = header
        self.names = (first, second)
        self.skip_bad_lines = skip_bad_lines
        self.roles = roles
        self.skipped = 0
        self.columns = None
        self.num_fields = None
        self.exact = False
        self.header_line = 0

    def _resolve(self, header_fields):
        self.columns = tuple(field_lookup(self.path, header_fields, name, role)
                             for name, role in zip(self.names, self.roles))
        self.exact = header_fields is not None and self.file_format == "csv"
        self.num_fields = len(header_fields) if self.exact else max(self.columns) + 1

    def rows(self, count_skipped=True):
        """``(first, second)`` of every good line, checking each (DataFileError naming it)."""
        numbered = decoded_lines(self.path)
        header_fields = None
        if self.header:
            self.header_line, first = next(numbered)
            header_fields = split_fields(first, self.file_format)
        self._resolve(header_fields)
        kind = "comma-separated" if self.file_format == "csv" else "tab-separated"
        needed = self.num_fields
        for number, text in numbered:
            fields = split_fields(text, self.file_format)
            if len(fields) != needed if self.exact else len(fields) < needed:
                if self.skip_bad_lines:
                    self.skipped += count_skipped
                    continue
                expected = f"{needed}" if self.exact else f"at least {needed}"
                raise DataFileError(self.path, f"{len(fields)} column(s), expected {expected} "
                                               f"({kind}); skip_bad_lines=True skips such "
                                               f"lines", line=number)
            yield fields[self.columns[0]], fields[self.columns[1]]

    def batches(self, batch=LINE_BATCH):
        """A ``tf.data`` of ``(firsts, seconds)`` string vectors: the pairs ``rows()`` yields,
        in file order, about ``batch`` at a time. Call after ``rows()`` has read the file."""
        if self.file_format == "csv":
            return tf.data.Dataset.from_generator(
                lambda: self.rows(count_skipped=False),
                output_signature=(tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.string))
            ).batch(batch)
        first, second = self.columns
        needed = self.num_fields
        skip_bad_lines = self.skip_bad_lines

        def columns(lines):
            fields = tf.strings.split(lines, "\t")
            if skip_bad_lines:
                fields = tf.ragged.boolean_mask(fields, fields.row_lengths() >= needed)
            starts = fields.row_starts()
            return (tf.gather(fields.values, starts + first),
                    tf.gather(fields.values, starts + second))

        return text_line_batches(self.path, skip_lines=self.header_line, batch=batch).map(
            columns, num_parallel_calls=tf.data.AUTOTUNE)
