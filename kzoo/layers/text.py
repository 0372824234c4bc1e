"""Strings <-> token ids inside the graph, with the ids every kzoo model reserves.

Ids: 0 padding (masked by ``Embedding(mask_zero=True)`` and the seq2seq loss), 1 start, 2 end
(the ``start_id``/``end_id`` of the seq2seq models and ``START_ID``/``END_ID`` of one-to-many),
3 unknown, tokens from 4. A vocabulary is a token list whose index is the id::

    vectorizer = TokenVectorizer(["one", "three", "twenty"], level="word", add_end=True)
    vectorizer(tf.constant("twenty one"))      # [6, 4, 2]: twenty, one, <end>
    vectorizer.get_vocabulary()                # ['', '<start>', '<end>', '[UNK]', 'one', ...]
    vectorizer.detokenize([[6, 4, 2, 0]])      # [b"twenty one"]

Everything is TensorFlow ops (``keras.layers.StringLookup``, ``tf.strings``), so a model that
takes or returns raw strings carries its vocabulary into a SavedModel. (``kzoo.datasets.text``
builds vocabularies from data and re-exports these names.)
"""

import keras
import tensorflow as tf

PAD_TOKEN, START_TOKEN, END_TOKEN, UNKNOWN_TOKEN = "", "<start>", "<end>", "[UNK]"
RESERVED_TOKENS = (PAD_TOKEN, START_TOKEN, END_TOKEN, UNKNOWN_TOKEN)
PAD_ID, START_ID, END_ID, UNKNOWN_ID = 0, 1, 2, 3
LEVELS = ("word", "char")
STANDARDIZE = (None, "lower", "lower_and_strip_punctuation")

# keras.layers.TextVectorization's punctuation, plus the HTML line breaks of web text.
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'
_LINE_BREAK = r"<br\s*/?>"


def _check(name, value, choices):
    if value not in choices:
        raise ValueError(f"TokenVectorizer: `{name}` must be one of {choices}, got {value!r}")


def tokenize(strings, level="word", standardize=None):
    """String tokens of ``strings`` (a scalar -> 1-D, a vector -> ragged (batch, None)).

    Args:
      strings: a string or a batch of strings (anything ``tf.convert_to_tensor`` takes).
      level: ``"word"`` (default) splits on whitespace ("twenty-three" stays one token),
        ``"char"`` into Unicode characters (spaces included).
      standardize: None (default, as is), ``"lower"``, or ``"lower_and_strip_punctuation"``
        (TextVectorization's default, also dropping ``<br />``).

    Returns:
      A 1-D string tensor for a scalar, a ragged ``(batch, None)`` one for a vector.

    Raises:
      ValueError: an unknown ``level`` or ``standardize``.

    Example:

    ```python
    import kzoo.datasets

    kzoo.datasets.tokenize("Twenty one!", standardize="lower_and_strip_punctuation")
    # [b"twenty", b"one"]
    ```
    """
    _check("level", level, LEVELS)
    _check("standardize", standardize, STANDARDIZE)
    strings = tf.convert_to_tensor(strings, tf.string)
    if standardize is not None:
        strings = tf.strings.lower(strings, encoding="utf-8")
    if standardize == "lower_and_strip_punctuation":
        strings = tf.strings.regex_replace(strings, _LINE_BREAK, " ")
        strings = tf.strings.regex_replace(strings, _PUNCTUATION, "")
    if level == "word":
        return tf.strings.split(strings)
    return tf.strings.unicode_split(strings, "UTF-8")


@keras.saving.register_keras_serializable(package="kzoo")
class TokenVectorizer(keras.layers.Layer):
    """Strings -> int32 token ids: 0 pad, 1 start, 2 end, 3 unknown, ``vocabulary[i]`` -> i + 4.

    ``call(strings)``: a scalar string gives ids (T,); a batch (B,) gives ids (B, T) padded
    with 0. ``add_start``/``add_end`` put 1 before / 2 after the tokens; ``max_length`` keeps the
    first ``max_length`` tokens (before start/end are added). Tokenization: :func:`tokenize`.
    ``vocabulary`` may start with the 4 reserved tokens (``get_vocabulary()``'s form).
    :meth:`detokenize` is the inverse for model outputs.

    Args:
      vocabulary: the tokens; ``vocabulary[i]`` gets id i + 4.
      level: ``"word"`` (default) or ``"char"``, as :func:`tokenize`.
      standardize: None (default), ``"lower"`` or ``"lower_and_strip_punctuation"``.
      add_start: put the start id 1 before the tokens; default False.
      add_end: put the end id 2 after the tokens; default False.
      max_length: positive int, keep the first ``max_length`` tokens; None (default) keeps all.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      strings: a scalar string or a batch ``(batch,)`` of strings.

    Returns:
      int32 ids: ``(T,)`` for a scalar, ``(batch, T)`` padded with 0 for a batch.

    Raises:
      ValueError: an unknown ``level`` or ``standardize``, reserved tokens inside the
        vocabulary, or a ``max_length`` that is not a positive int.

    Example:

    ```python
    import tensorflow as tf
    import kzoo.datasets

    vectorizer = kzoo.datasets.TokenVectorizer(["one", "three", "twenty"], add_end=True)
    ids = vectorizer(tf.constant(["twenty one", "three"]))   # [[6, 4, 2], [5, 2, 0]]
    vectorizer.detokenize(ids)                                 # [b"twenty one", b"three"]
    ```
    """

    def __init__(self, vocabulary, level="word", standardize=None, add_start=False,
                 add_end=False, max_length=None, **kwargs):
        super().__init__(**kwargs)
        _check("level", level, LEVELS)
        _check("standardize", standardize, STANDARDIZE)
        vocabulary = [str(t) for t in vocabulary]
        if tuple(vocabulary[:len(RESERVED_TOKENS)]) == RESERVED_TOKENS:
            vocabulary = vocabulary[len(RESERVED_TOKENS):]
        clashes = sorted(set(vocabulary) & set(RESERVED_TOKENS))
        if clashes:
            raise ValueError(f"TokenVectorizer: the vocabulary holds reserved tokens {clashes}")
        if max_length is not None and (isinstance(max_length, bool) or
                                       not isinstance(max_length, int) or max_length <= 0):
            raise ValueError(f"TokenVectorizer: `max_length` must be a positive integer or "
                             f"None, got {max_length!r}")
        self.vocabulary = vocabulary
        self.level = level
        self.standardize = standardize
        self.add_start = bool(add_start)
        self.add_end = bool(add_end)
        self.max_length = max_length
        # StringLookup fixes mask at 0 and the OOV id at 1, so its ids are 0 pad, 1 unknown,
        # 2 start, 3 end, 4+ tokens; _REMAP moves unknown/start/end to the zoo's 3/1/2.
        self.lookup = keras.layers.StringLookup(
            vocabulary=[START_TOKEN, END_TOKEN, *vocabulary], mask_token=PAD_TOKEN,
            oov_token=UNKNOWN_TOKEN, num_oov_indices=1, name="lookup")
        self._remap = tf.constant([PAD_ID, UNKNOWN_ID, START_ID, END_ID], tf.int32)

    @property
    def vocabulary_size(self):
        return len(self.vocabulary) + len(RESERVED_TOKENS)

    def get_vocabulary(self):
        """All tokens, index = id: the 4 reserved tokens then the vocabulary."""
        return list(RESERVED_TOKENS) + list(self.vocabulary)

    def build(self, input_shape):
        # The lookup table is made in __init__ (from the vocabulary): nothing to build.
        pass

    def call(self, strings):
        strings = tf.convert_to_tensor(strings, tf.string)
        tokens = tokenize(strings, self.level, self.standardize)
        if self.max_length is not None:
            tokens = tokens[..., :self.max_length]
        ids = tf.cast(self.lookup(tokens), tf.int32)
        special = len(RESERVED_TOKENS)
        ids = tf.ragged.map_flat_values(
            lambda raw: tf.where(raw < special,
                                 tf.gather(self._remap, tf.minimum(raw, special - 1)), raw), ids)
        ragged = isinstance(ids, tf.RaggedTensor)
        rows = ids.nrows() if ragged else None
        parts = []
        if self.add_start:
            parts.append(_column(START_ID, rows))
        parts.append(ids)
        if self.add_end:
            parts.append(_column(END_ID, rows))
        if len(parts) > 1:
            ids = tf.concat(parts, axis=-1)
        if ragged:
            ids = ids.to_tensor(PAD_ID)
        return ids

    def detokenize(self, ids, end_id=END_ID):
        """Strings (B,) of token ids (B, T): the tokens before the first ``end_id`` or padding
        id of each row, joined by a space (word level) or nothing (char level). Every other id
        is its vocabulary entry (``<start>``, ``[UNK]``); an id past the vocabulary is
        ``[UNK]``. (``kzoo predict`` writes its outputs with it.)"""
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank != 2 or not ids.dtype.is_integer:
            raise ValueError(f"TokenVectorizer.detokenize: expects integer ids of shape (batch, "
                             f"time), got {ids.dtype.name} {tuple(ids.shape)}")
        ids = tf.cast(ids, tf.int32)
        stop = tf.logical_or(tf.equal(ids, end_id), tf.equal(ids, PAD_ID))
        # A row keeps its ids up to (not including) its first stop: the count of leading
        # non-stop ids.
        kept = tf.reduce_sum(tf.cast(tf.equal(tf.cumsum(tf.cast(stop, tf.int32), axis=1), 0),
                                     tf.int32), axis=1)
        table = tf.constant(self.get_vocabulary())
        inside = tf.logical_and(ids >= 0, ids < self.vocabulary_size)
        tokens = tf.gather(table, tf.where(inside, ids, UNKNOWN_ID))
        tokens = tf.RaggedTensor.from_tensor(tokens, lengths=kept)
        return tf.strings.reduce_join(tokens, axis=1,
                                      separator=" " if self.level == "word" else "")

    def compute_output_spec(self, strings):
        shape = tuple(strings.shape) + (None,)
        return keras.KerasTensor(shape, dtype="int32")

    def get_config(self):
        config = {"vocabulary": list(self.vocabulary), "level": self.level,
                  "standardize": self.standardize, "add_start": self.add_start,
                  "add_end": self.add_end, "max_length": self.max_length}
        return {**super().get_config(), **config}


def _column(token_id, rows):
    # One token per row: (1,) for a single sequence, ragged (rows, 1) for a batch.
    if rows is None:
        return tf.constant([token_id], tf.int32)
    return tf.RaggedTensor.from_tensor(tf.fill(tf.stack([rows, 1]), token_id))
