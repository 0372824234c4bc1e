"""``digits``: scikit-learn's 8x8 handwritten digits for three patterns.

- ``task="rows"`` (many-to-one): the image read row by row, (8, 8) floats in [0, 1] -> label.
- ``task="caption"`` (one-to-many): the 64 pixels -> the digit's name spelled one character per
  step, ``((features (64,), target_in [1, c...]), target_out [c..., 2])``.
- ``task="pixels"`` (one-to-one): the 64 pixels -> label (the feed-forward baseline).

Options (``kzoo.datasets.load("digits", **options)``):
    task: ``"rows"`` (default), ``"caption"`` or ``"pixels"``.
"""

import tensorflow as tf

from kzoo.checks import check_choice
from kzoo.datasets import core
from kzoo.datasets.digits.digits_dataset_builder import Builder, DIGIT_NAMES
from kzoo.datasets.text import TokenVectorizer, build_vocabulary

TASKS = ("rows", "caption", "pixels")
OPTIONS = {"task": "rows"}


@core.register_dataset(
    "digits", pattern="many_to_one", options=OPTIONS,
    description="8x8 handwritten digits: rows -> label (many-to-one), image -> spelled name "
                "(one-to-many), pixels -> label (one-to-one)")
def load_digits(*, split, batch_size, data_dir, shuffle, seed, task):
    name = "digits"
    where = f"dataset {name!r}"
    check_choice(where, "task", task, TASKS)
    builder = core.prepare(Builder, None, data_dir)
    names = TokenVectorizer(build_vocabulary(DIGIT_NAMES, level="char"), level="char",
                            name="digit_name_vectorizer")
    class_names = tf.constant(DIGIT_NAMES)

    def prepare_example(example):
        image = tf.cast(example["image"], tf.float32) / 16.0
        label = tf.cast(example["label"], tf.int32)
        if task == "rows":
            return image, label
        if task == "pixels":
            return tf.reshape(image, [64]), label
        spelled = names(tf.gather(class_names, label))
        return (tf.reshape(image, [64]), tf.concat([[1], spelled], 0)), \
            tf.concat([spelled, [2]], 0)

    examples = builder.as_dataset(split=split, shuffle_files=False).map(prepare_example)
    count = builder.info.splits[split].num_examples
    data = core.finish(examples, batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=count, padded=task == "caption")
    vocabularies, vectorizers = {}, {}
    if task == "rows":
        pattern, config = "many_to_one", {"input_dim": 8, "num_classes": 10}
        suggested = ("many_to_one_lstm", "many_to_one_gru", "many_to_one_rnn")
    elif task == "pixels":
        pattern, config = "one_to_one", {"input_dim": 64, "num_classes": 10}
        suggested = ("one_to_one_mlp",)
    else:
        pattern = "one_to_many"
        config = {"feature_dim": 64, "vocab_size": names.vocabulary_size, "embedding_dim": 16,
                  "units": 64}
        suggested = ("one_to_many_lstm", "one_to_many_gru", "one_to_many_rnn")
        vocabularies = {"target": names.get_vocabulary()}
        vectorizers = {"target": names}
    info = core.DatasetInfo(
        name=name, split=split, pattern=pattern, suggested_models=suggested,
        model_config=config, options={"task": task}, num_examples=count,
        vocabularies=vocabularies, vectorizers=vectorizers, class_names=DIGIT_NAMES,
        description=f"8x8 handwritten digits ({task})", builder_info=builder.info)
    return data, info
