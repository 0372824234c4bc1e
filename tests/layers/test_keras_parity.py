"""kzoo layers against keras.layers.SimpleRNN/LSTM/GRU with the same weights: outputs, states
and gradients equal to 1e-5."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo

CASES = {
    "rnn": (kzoo.layers.SimpleRNN, keras.layers.SimpleRNN, {}),
    "lstm": (kzoo.layers.LSTM, keras.layers.LSTM, {}),
    "gru": (kzoo.layers.GRU, keras.layers.GRU, {}),
    "gru_reset_before": (kzoo.layers.GRU, keras.layers.GRU, {"reset_after": False}),
}
UNITS, FEATURES, BATCH, TIME = 5, 4, 3, 6


def make_pair(case, rng, **layer_kwargs):
    ours_cls, keras_cls, cell_kwargs = CASES[case]
    kwargs = {**cell_kwargs, **layer_kwargs}
    ours = ours_cls(UNITS, **kwargs)
    theirs = keras_cls(UNITS, **kwargs)
    shape = (BATCH if kwargs.get("stateful") else None, TIME, FEATURES)
    ours.build(shape)
    theirs.build(shape)
    assert [(w.name, w.shape) for w in ours.weights if w.trainable] == \
        [(w.name, w.shape) for w in theirs.weights if w.trainable]
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32")
               for w in theirs.trainable_weights]
    for layer in (ours, theirs):
        for variable, value in zip(layer.trainable_weights, weights):
            variable.assign(value)
    return ours, theirs


def as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def assert_same(a, b, atol=1e-5):
    a, b = as_list(a), as_list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


@pytest.fixture
def inputs(rng):
    return rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_outputs_and_states_equal_keras(case, return_sequences, go_backwards, inputs, rng):
    ours, theirs = make_pair(case, rng, return_sequences=return_sequences, return_state=True,
                             go_backwards=go_backwards)
    assert_same(ours(inputs), theirs(inputs))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_right_padded_mask_equals_keras(case, return_sequences, inputs, rng):
    mask = np.ones((BATCH, TIME), bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    ours, theirs = make_pair(case, rng, return_sequences=return_sequences, return_state=True)
    assert_same(ours(inputs, mask=mask), theirs(inputs, mask=mask))


@pytest.mark.parametrize("case", sorted(CASES))
def test_embedding_mask_propagates(case, rng):
    ids = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]])
    outs = []
    for which in (0, 1):
        embedding = keras.layers.Embedding(10, FEATURES, mask_zero=True)
        embedding.build((None, None))
        embedding.set_weights([np.linspace(-1, 1, 10 * FEATURES, dtype="float32")
                               .reshape(10, FEATURES)])
        layer = make_pair(case, np.random.default_rng(7), return_sequences=True)[which]
        outs.append(layer(embedding(ids)))
    assert_same(*outs)
    # Padded steps repeat the last valid output (Keras' zero_output_for_mask=False).
    np.testing.assert_allclose(np.asarray(outs[0])[0, 3], np.asarray(outs[0])[0, 2])


@pytest.mark.parametrize("case", sorted(CASES))
def test_initial_state_equals_keras(case, inputs, rng):
    ours, theirs = make_pair(case, rng, return_sequences=True, return_state=True)
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32")
              for _ in ours.cell.state_size]
    assert_same(ours(inputs, initial_state=states), theirs(inputs, initial_state=states))


@pytest.mark.parametrize("case", sorted(CASES))
def test_stateful_across_two_calls_equals_keras(case, inputs, rng):
    ours, theirs = make_pair(case, rng, return_sequences=True, stateful=True)
    for half in (inputs[:, :3], inputs[:, 3:]):
        assert_same(ours(half), theirs(half))
    ours.reset_state()
    theirs.reset_state()
    assert_same(ours(inputs[:, :2]), theirs(inputs[:, :2]))
    # Stateful in two halves equals one call over the whole sequence.
    whole, _ = make_pair(case, rng, return_sequences=True)
    for variable, value in zip(whole.trainable_weights, ours.trainable_weights):
        variable.assign(value)
    ours.reset_state()
    first, second = ours(inputs[:, :3]), ours(inputs[:, 3:])
    assert_same(np.concatenate([first, second], 1), whole(inputs))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_equal_keras(case, masked, inputs, rng):
    ours, theirs = make_pair(case, rng, return_sequences=True)
    mask = None
    if masked:
        mask = np.ones((BATCH, TIME), bool)
        mask[0, 4:] = False
    x = tf.constant(inputs)
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x, mask=mask)))
        grads.append(tape.gradient(loss, [x] + layer.trainable_weights))
    for g_ours, g_keras in zip(*grads):
        np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_keras), atol=1e-5)


def test_bidirectional_equals_keras_bidirectional(inputs, rng):
    mask = np.ones((BATCH, TIME), bool)
    mask[1, 2:] = False
    ours = kzoo.layers.Bidirectional(kzoo.layers.LSTM(UNITS, return_sequences=True),
                                     merge_mode="concat")
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True),
                                        merge_mode="concat")
    ours.build((None, TIME, FEATURES))
    theirs.build((None, TIME, FEATURES))
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    assert_same(ours(inputs, mask=mask), theirs(inputs, mask=mask))
