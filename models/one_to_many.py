"""One-to-many: one input (a feature vector, an image feature) -> a token sequence.

A caption decoder ("show and tell"): the feature vector sets the initial state of every layer,
and the decoder is trained with teacher forcing on ``((features, target_in_ids), target_out_ids)``
where ``target_in_ids = [START, w_1, ..., w_n]`` and ``target_out_ids = [w_1, ..., w_n, END]``
(0 pads both and is masked out of the loss). ``generate(model, features)`` decodes from the
features alone::

    model = kzoo.build("one_to_many_lstm", feature_dim=2048, vocab_size=5000)
    tokens = kzoo.models.one_to_many.generate(model, image_features, max_length=20)

Token ids: 0 padding, ``START_ID`` = 1, ``END_ID`` = 2, words from 3.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

import kzoo.layers
from kzoo.layers.text import END_ID, PAD_ID, START_ID
from kzoo.models import decoding, variants
from kzoo.models.stack import recurrent_stack, validate_common

# No bidirectional variant: a decoder generates left to right, and a backward pass under teacher
# forcing would read the very tokens it must predict.
_VARIANTS = {"": {}, "deep": {"num_layers": 3, "dropout": 0.2}}
_STATE_COUNT = {"rnn": 1, "lstm": 2, "gru": 1}


def _build(*, cell, name, feature_dim=2048, vocab_size=5000, embedding_dim=128, units=256,
           num_layers=1, dropout=0.0, residual=False):
    """Inputs ``(features (batch, feature_dim), target_in_ids (batch, time))`` -> per step
    softmax over the ``vocab_size`` tokens ``(batch, time, vocab_size)``. Each layer's initial
    state is ``tanh(features W + b)`` (one Dense per state), the target ids go through
    ``Embedding(vocab_size, embedding_dim, mask_zero=True)`` and a recurrent stack (dropout
    between layers, optional residual). ``feature_dim=2048`` is a ResNet-50 pooled image feature.
    It trains with sparse categorical cross-entropy, padding masked. Decode with
    ``kzoo.models.one_to_many.generate(model, features)`` (also ``model.generate`` on a freshly
    built model).
    """
    validate_common(name, cell=cell, units=units, num_layers=num_layers, dropout=dropout,
                    feature_dim=feature_dim, vocab_size=vocab_size, embedding_dim=embedding_dim)
    if vocab_size <= END_ID:
        raise ValueError(f"{name}: `vocab_size` must exceed {END_ID} (ids 0, 1, 2 are padding, "
                         f"start and end), got {vocab_size}")
    features = keras.Input((feature_dim,), name="features")
    target_in = keras.Input((None,), dtype="int32", name="target_in_ids")
    initial_states = [
        [keras.layers.Dense(units, activation="tanh", name=f"init_{k + 1}_{s}")(features)
         for s in range(_STATE_COUNT[cell])]
        for k in range(num_layers)
    ]
    embedded = kzoo.layers.TokenEmbedding(vocab_size, embedding_dim, mask_zero=True,
                                          name="target_embedding")(target_in)
    sequences = recurrent_stack(embedded, cell=cell, units=units, num_layers=num_layers,
                                dropout=dropout, residual=residual, return_sequences=True,
                                initial_state=initial_states, name="decoder")
    outputs = variants.output_head(sequences, vocab_size, None)
    model = keras.Model((features, target_in), outputs, name=name)
    model.generate = lambda features, **kwargs: generate(model, features, **kwargs)
    return model


_GENERATORS = weakref.WeakKeyDictionary()


def generate(model, features, *, max_length=20):
    """Greedy decoding of a one-to-many model: a caption for every feature vector.

    Each row starts from ``START_ID`` (1), takes the most likely token at every step (never
    padding or start), and stops at ``END_ID`` (2), which is kept, 0 padding the row after it.
    One ``tf.function`` graph per model: :func:`kzoo.models.greedy_search` whose step runs
    ``model`` on the tokens so far (later positions are padding, masked, and a recurrent model
    is causal). Re-running the prefix costs O(max_length²) steps, which is nothing at caption
    lengths and needs nothing of the model but its call. A freshly built model has it as
    ``model.generate(features, max_length=...)``; a loaded one needs this function.

    Args:
        model: a ``one_to_many_*`` model, built or loaded.
        features: float (batch, feature_dim), e.g. images' pooled CNN features.
        max_length: int in [1, ``kzoo.models.MAX_DECODE_LENGTH``], the most tokens per row
            (default 20).

    Returns:
        An int32 tensor (batch, max_length) of token ids.

    Raises:
        ValueError: if ``max_length`` is not an int in that range.

    Example:

    ```python
    import numpy as np
    import kzoo
    from kzoo.models.one_to_many import generate

    captioner = kzoo.build("one_to_many_gru", feature_dim=16, vocab_size=30, units=8)
    features = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    print(generate(captioner, features, max_length=10).shape)   # (2, 10)
    ```
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or \
            not 0 < max_length <= decoding.MAX_DECODE_LENGTH:
        raise ValueError(f"generate: `max_length` must be an integer in [1, "
                         f"{decoding.MAX_DECODE_LENGTH}], got {max_length!r}")
    decode = _GENERATORS.get(model)
    if decode is None:
        decode = _GENERATORS[model] = tf.function(lambda f, n: _greedy(model, f, n))
    features = tf.convert_to_tensor(features, tf.float32)
    return decode(features, tf.constant(max_length, tf.int32))


def _greedy(model, features, max_length):
    batch = tf.shape(features)[0]
    vocab_size = model.output_shape[-1]
    allowed = tf.logical_not(tf.cast(tf.one_hot(PAD_ID, vocab_size) +
                                     tf.one_hot(START_ID, vocab_size), tf.bool))

    def step(token_ids, states):
        # The states: the tokens so far (B, max_length), the step t. Token t is written, then
        # the model's distribution at position t scores the next.
        tokens, t = states
        tokens = tokens + token_ids[:, None] * tf.one_hot(t, max_length, dtype=tf.int32)[None]
        probs = tf.gather(model((features, tokens), training=False), t, axis=1)
        logits = tf.where(allowed, tf.math.log(tf.cast(probs, tf.float32)), decoding.NEG_INF)
        return logits, [tokens, t + 1], None

    initial = [tf.zeros([batch, max_length], tf.int32), tf.constant(0)]
    return decoding.greedy_search(step, initial, batch_size=batch, start_id=START_ID,
                                  end_id=END_ID, max_length=max_length)["tokens"]


def _example(config, batch_size, rng):
    length = variants.EXAMPLE_LENGTH
    features = rng.normal(size=(batch_size, config["feature_dim"])).astype("float32")
    words = rng.integers(END_ID + 1, config["vocab_size"], size=(batch_size, length - 1))
    column = np.ones((batch_size, 1), dtype=words.dtype)
    target_in = np.concatenate([START_ID * column, words], axis=1).astype("int32")
    target_out = np.concatenate([words, END_ID * column], axis=1).astype("int32")
    if batch_size > 1:  # a shorter caption, padded: 2 words then END
        target_in[-1, 3:] = PAD_ID
        target_out[-1, 2] = END_ID
        target_out[-1, 3:] = PAD_ID
    return (features, target_in), target_out


variants.register_variants(
    globals(), "one_to_many", _build,
    "a feature vector (e.g. of an image) -> a token sequence (caption decoder).",
    example=_example, loss=lambda config: "sparse_categorical_crossentropy",
    metrics=lambda config: ["accuracy"], variants=_VARIANTS)
