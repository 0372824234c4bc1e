"""kzoo.datasets: a real task for every I/O pattern, as TFDS builders and tf.data pipelines.

    data, info = kzoo.datasets.load("number_words", split="train", batch_size=64)
    model = kzoo.build(info.suggested_models[0], **info.model_config)
    model.compile("adam", **kzoo.models.compile_args(info.suggested_models[0], **info.model_config))
    model.fit(data, epochs=10)
    kzoo.datasets.list_datasets()
    data, info = kzoo.datasets.from_text_pairs("pairs.tsv")     # your own file: docs/own_data.md

Nothing is downloaded: every dataset is generated from code or from files installed packages
ship (vega_datasets, scikit-learn, num2words); ``imdb_reviews`` and ``ted_hrlr_translate`` load
the TFDS catalog datasets only if they are already prepared in ``data_dir``.
"""

from kzoo.datasets.core import DatasetInfo, dataset_spec, list_datasets, load, SPLITS
from kzoo.datasets.text import TokenVectorizer, build_vocabulary, decode, tokenize, \
    PAD_ID, START_ID, END_ID, UNKNOWN_ID, RESERVED_TOKENS
from kzoo.datasets.windows import sliding_window
from kzoo.datasets.files import DATA_FORMATS, DataFileError, data_format_of, from_csv, \
    from_file, from_labelled_sequences, from_labelled_text, from_text_pairs, reader_options, \
    with_scaling
from kzoo.datasets.examples import example_file

__all__ = ["DatasetInfo", "dataset_spec", "list_datasets", "load", "SPLITS", "TokenVectorizer",
           "build_vocabulary", "decode", "tokenize", "sliding_window", "PAD_ID", "START_ID",
           "END_ID", "UNKNOWN_ID", "RESERVED_TOKENS", "DATA_FORMATS", "DataFileError",
           "data_format_of", "from_csv", "from_file", "from_labelled_sequences",
           "from_labelled_text", "from_text_pairs", "reader_options", "with_scaling",
           "example_file"]
