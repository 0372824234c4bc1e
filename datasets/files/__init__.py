"""Datasets from a user's own files: sentence pairs, series, labelled sequences.

Each reader returns what ``kzoo.datasets.load`` returns, ``(batches, DatasetInfo)``, so a model
built from ``info.model_config`` fits the batches and (seq2seq) carries the vocabularies.
Every problem with a file is a :class:`DataFileError` naming the file, line and column, raised
before any batch is made. docs/own_data.md lists every option.
"""

from kzoo.datasets.files.classes import from_labelled_sequences, from_labelled_text
from kzoo.datasets.files.dispatch import DATA_FORMATS, data_format_of, from_file, \
    reader_options
from kzoo.datasets.files.errors import DataFileError
from kzoo.datasets.files.series import from_csv, with_scaling
from kzoo.datasets.files.text_pairs import from_text_pairs

__all__ = ["DATA_FORMATS", "DataFileError", "data_format_of", "from_csv", "from_file",
           "from_labelled_sequences", "from_labelled_text", "from_text_pairs",
           "reader_options", "with_scaling"]
