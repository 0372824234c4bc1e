"""Loaders for TFDS catalog datasets a user may already have prepared: ``imdb_reviews``
(sentiment, many-to-one) and ``ted_hrlr_translate`` (translation, seq2seq).

kzoo never downloads them: they load only from ``data_dir`` (TFDS' default when None) where
``tfds.builder(name).download_and_prepare()`` has put them. Vocabularies come from the train
split (most frequent words first, ties alphabetical), so every load makes the same ids.

Options of ``kzoo.datasets.load("imdb_reviews", **options)``:
    vocab_size: the vocabulary's size, the 4 reserved ids included (default 20000).
    max_length: the words kept of each review, from its start (default 256).

Options of ``kzoo.datasets.load("ted_hrlr_translate", **options)``:
    language_pair: one of ``TED_PAIRS``, e.g. ``"pt_to_en"`` (default).
    source_vocab_size: the source vocabulary's size, reserved ids included (default 8000).
    target_vocab_size: the target vocabulary's size, reserved ids included (default 8000).
    max_length: the words kept of each sentence (default 64).
"""

import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.text import TokenVectorizer, build_vocabulary

TED_PAIRS = ("az_to_en", "aztr_to_en", "be_to_en", "beru_to_en", "es_to_pt", "fr_to_pt",
             "gl_to_en", "glpt_to_en", "he_to_pt", "it_to_pt", "pt_to_en", "ru_to_en",
             "ru_to_pt", "tr_to_en")


def _load_prepared(tfds_name, split):
    """``(builder, dataset)`` of a prepared catalog dataset; a clear error if it is not."""
    import tensorflow_datasets as tfds

    def read(data_dir):
        try:
            return tfds.load(tfds_name, split=split, data_dir=data_dir, download=False,
                             with_info=True, shuffle_files=False)
        except (AssertionError, FileNotFoundError, tfds.core.DatasetNotFoundError) as error:
            raise ValueError(
                f"{tfds_name!r} is not prepared in data_dir={data_dir!r} and kzoo never "
                f"downloads: prepare it once where a network is available with "
                f"`tfds.builder({tfds_name.split('/')[0]!r}).download_and_prepare()` (same "
                f"data_dir), or use a built-in dataset ({error.__class__.__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''})") from None

    return read


# -- imdb_reviews ---------------------------------------------------------------------------------
IMDB_OPTIONS = {"vocab_size": 20000, "max_length": 256}


@core.register_dataset(
    "imdb_reviews", pattern="many_to_one", options=IMDB_OPTIONS, splits=("train", "test"),
    description="IMDB movie reviews -> positive/negative (TFDS catalog; must be prepared)")
def load_imdb_reviews(*, split, batch_size, data_dir, shuffle, seed, vocab_size, max_length):
    name = "imdb_reviews"
    where = f"dataset {name!r}"
    check_positive_int(where, "vocab_size", vocab_size, minimum=5)
    check_positive_int(where, "max_length", max_length)
    read = _load_prepared(name, split)
    examples, tfds_info = read(data_dir)
    train = examples if split == "train" else _load_prepared(name, "train")(data_dir)[0]
    words = build_vocabulary(train.map(lambda e: e["text"]), level="word",
                             standardize="lower_and_strip_punctuation", max_size=vocab_size)
    vectorizer = TokenVectorizer(words, level="word", standardize="lower_and_strip_punctuation",
                                 max_length=max_length, name="text_vectorizer")
    pairs = examples.map(lambda e: (vectorizer(e["text"]), tf.cast(e["label"], tf.int32)))
    count = tfds_info.splits[split].num_examples if split in tfds_info.splits else None
    data = core.finish(pairs, batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=count, bucket_length=lambda x, y: tf.shape(x)[0])
    info = core.DatasetInfo(
        name=name, split=split, pattern="many_to_one",
        suggested_models=("many_to_one_bi_lstm", "many_to_one_lstm", "many_to_one_gru"),
        model_config={"vocab_size": vectorizer.vocabulary_size, "num_classes": 2},
        options={"vocab_size": vocab_size, "max_length": max_length}, num_examples=count,
        vocabularies={"inputs": vectorizer.get_vocabulary()},
        vectorizers={"inputs": vectorizer}, class_names=("negative", "positive"),
        description="IMDB reviews (word ids, at most max_length words) -> sentiment",
        builder_info=tfds_info)
    return data, info


# -- ted_hrlr_translate ---------------------------------------------------------------------------
TED_OPTIONS = {"language_pair": "pt_to_en", "source_vocab_size": 8000,
               "target_vocab_size": 8000, "max_length": 64}


@core.register_dataset(
    "ted_hrlr_translate", pattern="seq2seq", options=TED_OPTIONS,
    description="TED talk translations, e.g. Portuguese -> English (TFDS catalog; must be "
                "prepared)")
def load_ted_hrlr_translate(*, split, batch_size, data_dir, shuffle, seed, language_pair,
                            source_vocab_size, target_vocab_size, max_length):
    name = "ted_hrlr_translate"
    where = f"dataset {name!r}"
    check_choice(where, "language_pair", language_pair, TED_PAIRS)
    check_positive_int(where, "source_vocab_size", source_vocab_size, minimum=5)
    check_positive_int(where, "target_vocab_size", target_vocab_size, minimum=5)
    check_positive_int(where, "max_length", max_length)
    source_language, target_language = language_pair.split("_to_")
    tfds_name = f"{name}/{language_pair}"
    examples, tfds_info = _load_prepared(tfds_name, split)(data_dir)
    train = examples if split == "train" else _load_prepared(tfds_name, "train")(data_dir)[0]
    standardize = "lower_and_strip_punctuation"
    vectorizers = {}
    for side, language, size in (("source", source_language, source_vocab_size),
                                 ("target", target_language, target_vocab_size)):
        words = build_vocabulary(train.map(lambda e, language=language: e[language]),
                                 level="word", standardize=standardize, max_size=size)
        vectorizers[side] = TokenVectorizer(words, level="word", standardize=standardize,
                                            max_length=max_length, name=f"{side}_vectorizer")
    source, target = vectorizers["source"], vectorizers["target"]

    def to_ids(example):
        target_ids = target(example[target_language])
        return ((source(example[source_language]), tf.concat([[1], target_ids], 0)),
                tf.concat([target_ids, [2]], 0))

    count = tfds_info.splits[split].num_examples if split in tfds_info.splits else None
    data = core.finish(examples.map(to_ids), batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=count, bucket_length=lambda x, y: tf.shape(y)[0])
    info = core.DatasetInfo(
        name=name, split=split, pattern="seq2seq",
        suggested_models=("seq2seq_attention", "seq2seq_luong", "seq2seq_lstm"),
        model_config={"source_vocab_size": source.vocabulary_size,
                      "target_vocab_size": target.vocabulary_size, "start_id": 1, "end_id": 2},
        options={"language_pair": language_pair, "source_vocab_size": source_vocab_size,
                 "target_vocab_size": target_vocab_size, "max_length": max_length},
        num_examples=count,
        vocabularies={"source": source.get_vocabulary(), "target": target.get_vocabulary()},
        vectorizers=dict(vectorizers),
        description=f"TED talks {source_language} -> {target_language} (word level)",
        builder_info=tfds_info)
    return data, info
