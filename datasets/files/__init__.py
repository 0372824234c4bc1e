"""Datasets from a user's own files: sentence pairs, series, labelled sequences.

Each reader returns what ``kzoo.datasets.load`` returns, ``(batches, DatasetInfo)``, so a model
built from ``info.model_config`` fits the batches and (seq2seq) carries the vocabularies.
Every problem with a file is a :class:`DataFileError` naming the file, line and column, raised
before any batch is made. docs/own_data.md lists every option.
"""

from kzoo.datasets.files.errors import DataFileError
from kzoo.datasets.files.series import from_csv, with_scaling
from kzoo.datasets.files.text_pairs import from_text_pairs

__all__ = ["DataFileError", "from_csv", "from_text_pairs", "with_scaling"]
