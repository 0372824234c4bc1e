"""Each cell: the sequence layer equals stepping the cell by hand (forward, backward, masked),
the cell works inside keras.layers.RNN, and float64 finite differences confirm its gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo

L = kzoo.layers
UNITS, FEATURES, BATCH, TIME = 4, 3, 2, 5

VARIANTS = {
    "rnn": (L.SimpleRNN, {}),
    "jordan": (L.Jordan, {"output_units": 3}),
    "lstm": (L.LSTM, {}),
    "lstm_no_forget_gate": (L.LSTM, {"use_forget_gate": False}),
    "lstm_peephole": (L.LSTM, {"peephole": True}),
    "lstm_layer_norm": (L.LSTM, {"layer_norm": True}),
    "lstm_projection": (L.LSTM, {"proj_units": 2}),
    "lstm_all_options": (L.LSTM, {"peephole": True, "layer_norm": True, "proj_units": 3}),
    "gru": (L.GRU, {}),
    "gru_reset_before": (L.GRU, {"reset_after": False}),
}


def make_layer(name, rng, dtype="float32", **kwargs):
    cls, options = VARIANTS[name]
    layer = cls(UNITS, dtype=dtype, **options, **kwargs)
    layer.build((None, TIME, FEATURES))
    for variable in layer.trainable_weights:
        variable.assign(rng.normal(scale=0.6, size=variable.shape).astype(dtype))
    return layer


def step_by_hand(cell, inputs, mask, go_backwards=False):
    """Steps ``cell.call`` over time in Python, carrying state through masked steps."""
    states = cell.get_initial_state(inputs.shape[0])
    outputs = []
    order = range(inputs.shape[1])[::-1] if go_backwards else range(inputs.shape[1])
    previous = tf.zeros_like(states[0])
    for t in order:
        output, new_states = cell(tf.constant(inputs[:, t]), states)
        keep = mask[:, t][:, None]
        states = [tf.where(keep, n, s) for n, s in zip(new_states, states)]
        previous = tf.where(keep, output, previous)
        outputs.append(previous)
    return np.stack([np.asarray(o) for o in outputs], 1), [np.asarray(s) for s in states]


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_equals_cell_stepped_by_hand(name, go_backwards, rng):
    layer = make_layer(name, rng, return_sequences=True, return_state=True,
                       go_backwards=go_backwards)
    inputs = rng.normal(size=(3, TIME, FEATURES)).astype("float32")
    mask = np.ones((3, TIME), bool)
    mask[1, 3:] = False   # right-padded
    mask[2, :2] = False   # left-padded
    outputs, *states = layer(inputs, mask=mask)
    expected_outputs, expected_states = step_by_hand(layer.cell, inputs, mask, go_backwards)
    np.testing.assert_allclose(np.asarray(outputs), expected_outputs, atol=1e-6)
    for state, expected in zip(states, expected_states):
        np.testing.assert_allclose(np.asarray(state), expected, atol=1e-6)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_cell_inside_keras_rnn_equals_kzoo_layer(name, rng):
    layer = make_layer(name, rng, return_sequences=True)
    inputs = rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    keras_rnn = keras.layers.RNN(layer.cell, return_sequences=True)
    np.testing.assert_allclose(np.asarray(keras_rnn(inputs)), np.asarray(layer(inputs)),
                               atol=1e-6)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fully_masked_row_returns_initial_state(name, rng):
    layer = make_layer(name, rng, return_state=True)
    inputs = rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    mask = np.ones((BATCH, TIME), bool)
    mask[0] = False
    initial = [rng.normal(size=(BATCH,) + tuple(np.atleast_1d(s))).astype("float32")
               for s in layer.cell.state_size]
    _, *states = layer(inputs, mask=mask, initial_state=initial)
    for state, start in zip(states, initial):
        np.testing.assert_array_equal(np.asarray(state)[0], start[0])
        assert not np.allclose(np.asarray(state)[1], start[1])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_gradients_match_float64_finite_differences(name, rng):
    layer = make_layer(name, rng, dtype="float64", return_sequences=True)
    inputs = tf.constant(rng.normal(size=(BATCH, 4, FEATURES)))
    mask = np.array([[True] * 4, [True, True, True, False]])
    readout = tf.constant(rng.normal(size=(4, layer.cell.output_size)))

    def loss():
        return tf.reduce_sum(tf.tanh(layer(inputs, mask=mask)) * readout)

    with tf.GradientTape() as tape:
        tape.watch(inputs)
        value = loss()
    analytic = tape.gradient(value, [inputs] + layer.trainable_weights)
    eps = 1e-6
    for variable, gradient in zip(layer.trainable_weights, analytic[1:]):
        flat = variable.numpy().reshape(-1)
        for index in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            original = flat.copy()
            for sign in (1, -1):
                bumped = original.copy()
                bumped[index] += sign * eps
                variable.assign(bumped.reshape(variable.shape))
                if sign == 1:
                    plus = float(loss())
                else:
                    minus = float(loss())
            variable.assign(original.reshape(variable.shape))
            numeric = (plus - minus) / (2 * eps)
            assert abs(np.asarray(gradient).reshape(-1)[index] - numeric) < 1e-6, \
                (variable.path, index)
    theoretical, numerical = tf.test.compute_gradient(
        lambda x: tf.reduce_sum(tf.tanh(layer(x, mask=mask)) * readout), [inputs])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)
