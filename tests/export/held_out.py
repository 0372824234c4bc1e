"""Every registered model on a real built-in dataset: which dataset fits which model, a brief
training on its train split, and a held-out batch of its test split.

The dataset of a model is the one whose ``info.suggested_models`` names its pattern and cell
(``digits`` for one-to-one, one-to-many and many-to-one, ``weather`` read day by day for
many-to-many, ``number_words`` for seq2seq); the bidirectional and deep variants take their
plain model's dataset. Two models need their data reshaped: ``many_to_many_jordan`` is served with
teacher forcing (its inputs are ``(days, previous classes)``), and ``many_to_many_convlstm``
labels the frames of a video, here the digit written row by row (frame t shows rows 0..t).
"""

import keras
import numpy as np
import tensorflow as tf

import kzoo
import kzoo.datasets
import kzoo.models as km

# pattern -> (dataset, options); the config the dataset asks for comes with the data.
DATASETS = {
    "one_to_one": ("digits", {"task": "pixels"}),
    "one_to_many": ("digits", {"task": "caption"}),
    "many_to_one": ("digits", {"task": "rows"}),
    "many_to_many": ("weather", {"task": "synced"}),
    "seq2seq": ("number_words", {"max_number": 1000}),
}
CONVLSTM = "many_to_many_convlstm"
JORDAN = "many_to_many_jordan"


def dataset_of(name):
    """``(dataset, options)`` a registered model trains and is measured on."""
    if name == CONVLSTM:
        return DATASETS["many_to_one"]
    return DATASETS[kzoo.model_info(name).pattern]


def _written_row_by_row(images, labels):
    # (B, 8, 8) -> (B, 8 frames, 8, 8, 1): frame t shows rows 0..t; every frame is labelled.
    rows = tf.shape(images)[1]
    shown = tf.sequence_mask(tf.range(1, rows + 1), rows, dtype=images.dtype)   # (t, row)
    frames = images[:, None, :, :] * shown[None, :, :, None]
    return frames[..., None], tf.repeat(labels[:, None], rows, axis=1)


def _adapt(name, data):
    if name == CONVLSTM:
        return data.map(_written_row_by_row)
    if name == JORDAN:
        return data.map(lambda days, classes: ((days, classes), classes))
    return data


def load(name, split, batch_size, data_dir):
    """``(tf.data batches for name, DatasetInfo)`` of ``split`` of the model's dataset."""
    dataset, options = dataset_of(name)
    data, info = kzoo.datasets.load(dataset, split=split, batch_size=batch_size,
                                    data_dir=data_dir, shuffle=split == "train", **options)
    if name != CONVLSTM:
        assert info.pattern == kzoo.model_info(name).pattern, (name, info.pattern)
    return _adapt(name, data), info


def model_config(name, info, **overrides):
    config = dict(info.model_config)
    if name == CONVLSTM:
        config = {"rows": 8, "cols": 8, "channels": 1, "num_classes": 10}
    config.update(overrides)
    accepted = kzoo.model_info(name).default_config
    return {k: v for k, v in config.items() if k in accepted}


def trained(name, data_dir, steps, batch_size=32, seed=0, **overrides):
    """``name`` built for its dataset (``overrides`` of its config where it takes them) and
    trained ``steps`` batches of its train split."""
    data, info = load(name, "train", batch_size, data_dir)
    config = model_config(name, info, **overrides)
    keras.utils.set_random_seed(seed)
    model = kzoo.build(name, **config)
    model.compile(keras.optimizers.Adam(3e-3, clipnorm=1.0), **km.compile_args(name, **config))
    model.fit(data.repeat().take(steps), epochs=1, verbose=0)
    return model


def held_out(name, data_dir, count):
    """Up to ``count`` examples of the test split as one ``(inputs, targets)`` NumPy batch."""
    data, _ = load(name, "test", count, data_dir)
    inputs, targets = next(iter(data))
    return tf.nest.map_structure(np.asarray, (inputs, targets))
