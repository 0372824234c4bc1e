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
    """Builds a deterministic vocabulary: the tokens of ``texts``, most frequent first.

    Ties are sorted alphabetically, so the same texts always give the same list, and so the
    same ids. Tokens are cut exactly as :func:`tokenize` cuts them. The reserved tokens (pad,
    start, end, unknown) are left out: :class:`TokenVectorizer` puts them before the list, so
    token ``vocabulary[i]`` gets id ``i + 4``.

    Args:
        texts: an iterable of str, or a ``tf.data.Dataset`` of scalar strings.
        level: ``"word"`` (default: split on whitespace) or ``"char"`` (Unicode characters,
            spaces included).
        standardize: None (default: the text as it is), ``"lower"``, or
            ``"lower_and_strip_punctuation"`` (also dropping ``<br />``), as in
            :func:`tokenize`.
        max_size: the largest size of the full vocabulary, the 4 reserved tokens included
            (the most frequent tokens are kept); None (default): no limit.
        min_count: tokens seen fewer times are left out, and become unknown (default 1).
        batch_size: how many texts are tokenized at once (default 1024); any value gives the
            same list.

    Returns:
        The tokens, a list of str without the reserved ones.

    Raises:
        ValueError: if ``max_size`` leaves no room beyond the 4 reserved tokens, or ``level``
            or ``standardize`` is not a valid value.

    Example:

    ```python
    import tensorflow as tf
    import kzoo.datasets

    words = kzoo.datasets.build_vocabulary(["twenty three", "one", "twenty one"])
    print(words)                                   # ['one', 'twenty', 'three']
    vectorizer = kzoo.datasets.TokenVectorizer(words, level="word")
    print(vectorizer(tf.constant(["twenty one"])).numpy())      # [[5 4]]
    print(kzoo.datasets.build_vocabulary(["abba"], level="char"))   # ['a', 'b']
    ```
    """
    if isinstance(texts, tf.data.Dataset):
        batches = texts.batch(batch_size)
    else:
        texts = [t for t in texts]
        batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    counts = collections.Counter()
    for batch in batches:
        tokens = tokenize(tf.convert_to_tensor(batch, tf.string), level, standardize)
        counts.update(t.decode("utf-8") for t in tokens.flat_values.numpy())
    return vocabulary_of_counts(counts, max_size=max_size, min_count=min_count)


def vocabulary_of_counts(counts, *, max_size=None, min_count=1, where="build_vocabulary"):
    """The vocabulary :func:`build_vocabulary` makes from token counts (a mapping str -> int):
    reserved tokens left out, tokens below ``min_count`` dropped, most frequent first with ties
    alphabetical, at most ``max_size - 4`` tokens. ``where`` names the caller in errors."""
    counts = {t: c for t, c in counts.items() if t not in RESERVED_TOKENS and c >= min_count}
    ordered = sorted(counts, key=lambda t: (-counts[t], t))
    if max_size is not None:
        if max_size <= len(RESERVED_TOKENS):
            raise ValueError(f"{where}: `max_size` must exceed the "
                             f"{len(RESERVED_TOKENS)} reserved tokens, got {max_size}")
        ordered = ordered[:max_size - len(RESERVED_TOKENS)]
    return ordered


def decode(ids, vocabulary, level="word"):
    """Turns token ids back into text, for reading a model's input or output.

    The ids are read up to the first end id (2); pad (0) and start (1) ids are skipped; an id
    outside ``vocabulary`` reads as ``[UNK]``.

    Args:
        ids: token ids of one sequence: a 1-D array, tensor or list of ints.
        vocabulary: the token list whose index is the id, with the reserved tokens first
            (``TokenVectorizer.get_vocabulary()``, or ``DatasetInfo.vocabularies[name]``).
        level: ``"word"`` (default) joins the tokens with a space, ``"char"`` with nothing.

    Returns:
        The text, a str.

    Example:

    ```python
    import kzoo.datasets

    vocabulary = ["", "<start>", "<end>", "[UNK]", "one", "twenty"]
    print(kzoo.datasets.decode([1, 5, 4, 2, 0], vocabulary))       # twenty one
    print(kzoo.datasets.decode([5, 9], vocabulary, level="char"))   # twenty[UNK]
    ```
    """
    tokens = []
    for i in np.asarray(ids).tolist():
        if i == END_ID:
            break
        if i in (PAD_ID, START_ID):
            continue
        tokens.append(vocabulary[i] if 0 <= i < len(vocabulary) else UNKNOWN_TOKEN)
    return (" " if level == "word" else "").join(tokens)
