"""Stable splits: the split of an example is a hash of its key (a text's words), nothing else.

An example's split depends on its own key only, so editing, adding or removing other lines
moves no example from one split to another, and two examples with the same key (the same
sentence twice) always sit in the same split. The hash is TensorFlow's Fingerprint64
(``tf.strings.to_hash_bucket_fast``), the same in every process and on every platform, so the
checking pass and the training pipeline agree.
"""

import math

import tensorflow as tf

from kzoo.datasets.core import SPLITS
from kzoo.layers.text import tokenize

BUCKETS = 1 << 30
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def check_fractions(where, fractions):
    """``fractions`` as a tuple of 3 floats >= 0 summing to 1 (train, validation, test)."""
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values) or \
            abs(sum(values) - 1.0) > 1e-6 or values[0] == 0:
        raise ValueError(f"{where}: `split_fractions` must be 3 numbers >= 0 (train, "
                         f"validation, test) summing to 1, train above 0; got {fractions!r}")
    return values


def split_key(texts, standardize):
    """The key of each text: its words after ``standardize``, joined by single spaces (so
    "Go!" and "go" share a key when punctuation is stripped)."""
    words = tokenize(texts, "word", standardize)
    return tf.strings.reduce_join(words, axis=-1, separator=" ")


def split_index(texts, standardize, fractions):
    """The split of each text (0 train, 1 validation, 2 test), an int32 tensor shaped like
    ``texts``."""
    if tf.executing_eagerly():
        return _split_index_graph(tf.convert_to_tensor(texts, tf.string), standardize,
                                  tuple(fractions))
    return _split_index(texts, standardize, fractions)


@tf.function(autograph=False, reduce_retracing=True)
def _split_index_graph(texts, standardize, fractions):
    return _split_index(texts, standardize, fractions)


def _split_index(texts, standardize, fractions):
    bucket = tf.strings.to_hash_bucket_fast(split_key(texts, standardize), BUCKETS)
    train_end = int(round(fractions[0] * BUCKETS))
    validation_end = int(round((fractions[0] + fractions[1]) * BUCKETS))
    return tf.where(bucket < train_end, 0, tf.where(bucket < validation_end, 1, 2))


def split_number(split):
    """The index of a split name in ``SPLITS``."""
    return SPLITS.index(split)
