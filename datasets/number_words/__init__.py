"""``number_words``: spelled numbers from one language to another (seq2seq, attention).

English -> German reorders tens and units ("twenty-three" -> "dreiundzwanzig"), which is what
attention is for. Inputs ``((source_ids, target_in_ids), target_out_ids)`` with
``target_in = [1, y...]`` and ``target_out = [y..., 2]``, 0-padded, for the seq2seq models.

Options (``kzoo.datasets.load("number_words", **options)``):
    source_language: ``"en"`` (default), ``"de"`` or ``"fr"``.
    target_language: ``"de"`` (default), ``"fr"`` or ``"en"``.
    max_number: the numbers are 0 .. max_number - 1, split over disjoint numbers (default
        10000, at least 30).
    level: ``"word"`` or ``"char"`` for both sides; None (default) leaves them to the two
        options below.
    source_level: ``"word"`` (default) or ``"char"``: the source's tokens.
    target_level: ``"char"`` (default) or ``"word"``: the target's tokens.
"""

import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.number_words.number_words_dataset_builder import Builder, \
    NumberWordsConfig, LANGUAGES
from kzoo.datasets.text import LEVELS, TokenVectorizer, build_vocabulary

OPTIONS = {"source_language": "en", "target_language": "de", "max_number": 10000,
           "level": None, "source_level": "word", "target_level": "char"}


@core.register_dataset(
    "number_words", pattern="seq2seq", options=OPTIONS,
    description="numbers spelled in English -> German or French (num2words); word or "
                "character level; splits over disjoint numbers")
def load_number_words(*, split, batch_size, data_dir, shuffle, seed, source_language,
                      target_language, max_number, level, source_level, target_level):
    name = "number_words"
    where = f"dataset {name!r}"
    check_choice(where, "source_language", source_language, LANGUAGES)
    check_choice(where, "target_language", target_language, LANGUAGES)
    check_positive_int(where, "max_number", max_number, minimum=30)
    if level is not None:
        source_level = target_level = check_choice(where, "level", level, LEVELS)
    check_choice(where, "source_level", source_level, LEVELS)
    check_choice(where, "target_level", target_level, LEVELS)
    config = NumberWordsConfig(source_language=source_language,
                               target_language=target_language, max_number=max_number)
    builder = core.prepare(Builder, config, data_dir)
    train = core.as_numpy(builder, "train")
    source = TokenVectorizer(build_vocabulary([e["source"].decode() for e in train],
                                              level=source_level),
                             level=source_level, name="source_vectorizer")
    target = TokenVectorizer(build_vocabulary([e["target"].decode() for e in train],
                                              level=target_level),
                             level=target_level, name="target_vectorizer")

    def to_ids(example):
        target_ids = target(example["target"])
        target_in = tf.concat([[1], target_ids], 0)
        target_out = tf.concat([target_ids, [2]], 0)
        return (source(example["source"]), target_in), target_out

    examples = builder.as_dataset(split=split, shuffle_files=False).map(to_ids)
    count = builder.info.splits[split].num_examples
    data = core.finish(examples, batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=count, bucket_length=lambda x, y: tf.shape(y)[0])
    info = core.DatasetInfo(
        name=name, split=split, pattern="seq2seq",
        suggested_models=("seq2seq_attention", "seq2seq_lstm", "seq2seq_luong", "seq2seq_gru"),
        model_config={"source_vocab_size": source.vocabulary_size,
                      "target_vocab_size": target.vocabulary_size, "start_id": 1, "end_id": 2},
        options={"source_language": source_language, "target_language": target_language,
                 "max_number": max_number, "source_level": source_level,
                 "target_level": target_level},
        num_examples=count,
        vocabularies={"source": source.get_vocabulary(), "target": target.get_vocabulary()},
        vectorizers={"source": source, "target": target},
        description=f"numbers below {max_number} spelled in {source_language} -> "
                    f"{target_language} ({source_level} -> {target_level} level)",
        builder_info=builder.info)
    return data, info
