"""The error every reader of a user's file raises: the file, the line and the column at fault."""


class DataFileError(ValueError):
    """A user's data file that cannot be read as asked, found before any training starts.

    The message names the file, and the line (1-based, the header is line 1) and column where
    they are known, e.g. ``pairs.tsv, line 12: 1 column, expected at least 2 (tab-separated)``.
    It is a ``ValueError``, so code that catches those (the ``kzoo`` command) catches it too.

    Args:
        path: the file (str or path-like).
        message: what is wrong.
        line: the 1-based line number, or None.
        column: the column's name (or 1-based number), or None.

    Example:

    ```python
    import kzoo.datasets as kd

    error = kd.DataFileError("pairs.tsv", "not UTF-8 (byte 0xe9)", line=3)
    print(error)              # pairs.tsv, line 3: not UTF-8 (byte 0xe9)
    print(error.line)         # 3
    ```
    """

    def __init__(self, path, message, line=None, column=None):
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}" if isinstance(column, str) else f", column {column}"
        super().__init__(f"{where}: {message}")
