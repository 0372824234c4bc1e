"""Text -> token ids: a deterministic vocabulary from data, and the vectorizer that uses it.

Ids: 0 padding, 1 start, 2 end, 3 unknown, tokens from 4 (see :mod:`kzoo.layers.text`, where
``TokenVectorizer`` and ``tokenize`` live so that models can carry them; they are re-exported
here). A vocabulary is a token list whose index is the id::

    words = build_vocabulary(["twenty three", "one"], level="word")   # ['one', 'three', 'twenty']
    vectorizer = TokenVectorizer(words, level="word", add_end=True)
    vectorizer(tf.constant("twenty one"))      # [6, 4, 2]: twenty, one, <end>
    vectorizer.get_vocabulary()                # ['', '<start>', '<end>', '[UNK]', 'one', ...]

``TokenVectorizer`` is a Keras layer (a ``StringLookup`` inside), so it can be saved with a
model that takes raw strings.
"""

import collections

import numpy as np
import tensorflow as tf

from kzoo.layers.text import END_ID, END_TOKEN, LEVELS, PAD_ID, PAD_TOKEN, RESERVED_TOKENS, \
    STANDARDIZE, START_ID, START_TOKEN, TokenVectorizer, UNKNOWN_ID, UNKNOWN_TOKEN, tokenize

__all__ = ["build_vocabulary", "decode", "tokenize", "TokenVectorizer", "END_ID", "END_TOKEN",
           "LEVELS", "PAD_ID", "PAD_TOKEN", "RESERVED_TOKENS", "STANDARDIZE", "START_ID",
           "START_TOKEN", "UNKNOWN_ID", "UNKNOWN_TOKEN"]


def build_vocabulary(texts, *, level="word", standardize=None, max_size=None, min_count=1,
                     batch_size=1024):
    """The tokens of ``texts`` sorted by count (most frequent first), ties alphabetically: the
    same texts always give the same list. ``texts`` is an iterable of str or a
    ``tf.data.Dataset`` of scalar strings; tokens are cut exactly as :func:`tokenize` cuts them.
    ``max_size`` caps the full vocabulary, the 4 reserved tokens included; tokens seen fewer than
    ``min_count`` times are left out (they become unknown). Returns the tokens without the
    reserved ones (``TokenVectorizer`` adds them)."""
    if isinstance(texts, tf.data.Dataset):
        batches = texts.batch(batch_size)
    else:
        texts = [t for t in texts]
        batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    counts = collections.Counter()
    for batch in batches:
        tokens = tokenize(tf.convert_to_tensor(batch, tf.string), level, standardize)
        counts.update(t.decode("utf-8") for t in tokens.flat_values.numpy())
    for token in RESERVED_TOKENS:
        counts.pop(token, None)
    ordered = sorted((t for t, c in counts.items() if c >= min_count),
                     key=lambda t: (-counts[t], t))
    if max_size is not None:
        if max_size <= len(RESERVED_TOKENS):
            raise ValueError(f"build_vocabulary: `max_size` must exceed the "
                             f"{len(RESERVED_TOKENS)} reserved tokens, got {max_size}")
        ordered = ordered[:max_size - len(RESERVED_TOKENS)]
    return ordered


def decode(ids, vocabulary, level="word"):
    """Text of token ids (1-D): stops at the end id, skips pad and start; unknown -> ``[UNK]``."""
    tokens = []
    for i in np.asarray(ids).tolist():
        if i == END_ID:
            break
        if i in (PAD_ID, START_ID):
            continue
        tokens.append(vocabulary[i] if 0 <= i < len(vocabulary) else UNKNOWN_TOKEN)
    return (" " if level == "word" else "").join(tokens)
