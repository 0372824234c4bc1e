"""AttentionWrapper: one step against NumPy, unroll against stepping, keras.layers.RNN, config."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from kzoo.layers import (AttentionWrapper, BahdanauAttention, GRUCell, LSTMCell,
                         LuongMonotonicAttention)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def make_wrapper(**kwargs):
    keras.utils.set_random_seed(7)
    kwargs.setdefault("attention_layer_size", 3)
    wrapper = AttentionWrapper(LSTMCell(4), BahdanauAttention(5), memory_dim=6, **kwargs)
    wrapper.build((None, 2))
    return wrapper


def numpy_step(wrapper, x, h, c, attention, memory, mask):
    """The module docstring's equations, from the weights."""
    cell, mech = wrapper.cell, wrapper.attention
    z = np.concatenate([x, attention], -1) @ cell.kernel.numpy() + h @ \
        cell.recurrent_kernel.numpy() + cell.bias.numpy()
    i, f, g, o = np.split(z, 4, -1)
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h_new = sigmoid(o) * np.tanh(c_new)
    hidden = np.tanh((h_new @ mech.query_kernel.numpy())[:, None] +
                     memory @ mech.key_kernel.numpy())
    scores = np.where(mask, hidden @ mech.v.numpy(), -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    context = np.einsum("bt,btd->bd", weights, memory)
    attention = np.tanh(np.concatenate([h_new, context], -1) @
                        wrapper.attention_layer.kernel.numpy())
    return attention, [h_new, c_new, attention, weights]


def test_step_matches_the_equations(rng):
    wrapper = make_wrapper()
    memory = rng.normal(size=(2, 5, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    x = rng.normal(size=(2, 2)).astype("float32")
    h, c = rng.normal(size=(2, 2, 4)).astype("float32")
    attention = rng.normal(size=(2, 3)).astype("float32")
    states = [h, c, attention, np.zeros((2, 5), "float32")]
    output, new_states, alignments = wrapper.step(tf.constant(x), [tf.constant(s) for s in states],
                                                  tf.constant(memory), memory_mask=mask)
    expected_output, expected_states = numpy_step(wrapper, x, h, c, attention, memory, mask)
    np.testing.assert_allclose(output, expected_output, atol=1e-5)
    for got, want in zip(new_states, expected_states):
        np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(alignments.numpy()[1, 2:], 0)
    # Without input feeding and output_attention the cell sees x alone and emits its output.
    plain = make_wrapper(input_feeding=False, output_attention=False)
    assert plain.cell.kernel.shape == (2, 16)
    output, states, _ = plain.step(tf.constant(x), [tf.constant(s) for s in states],
                                   tf.constant(memory))
    np.testing.assert_allclose(output, states[0])


def test_unroll_equals_stepping_and_keeps_the_alignment_history(rng):
    wrapper = make_wrapper()
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    memory_mask = tf.constant([[True] * 4, [True] * 3 + [False]])
    inputs = tf.constant(rng.normal(size=(2, 3, 2)).astype("float32"))
    outputs, history, final = wrapper.unroll(inputs, memory, memory_mask)
    assert outputs.shape == (2, 3, 3) and history.shape == (2, 3, 4)
    states = wrapper.get_initial_state(memory=memory)
    for t in range(3):
        output, states, alignments = wrapper.step(inputs[:, t], states, memory,
                                                  memory_mask=memory_mask)
        np.testing.assert_allclose(outputs[:, t], output, atol=1e-6)
        np.testing.assert_allclose(history[:, t], alignments, atol=1e-6)
    for got, want in zip(final, states):
        np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(history, -1), np.ones((2, 3)), atol=1e-6)


def test_runs_inside_keras_rnn_after_setup_memory(rng):
    wrapper = make_wrapper()
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    memory_mask = tf.constant([[True] * 4, [True] * 2 + [False] * 2])
    inputs = tf.constant(rng.normal(size=(2, 3, 2)).astype("float32"))
    expected, _, expected_final = wrapper.unroll(inputs, memory, memory_mask)
    wrapper.setup_memory(memory, memory_mask)
    rnn = keras.layers.RNN(wrapper, return_sequences=True, return_state=True)
    outputs, *final = rnn(inputs, initial_state=wrapper.get_initial_state())
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    for got, want in zip(final, expected_final):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_monotonic_attention_starts_on_the_first_position_and_chains(rng):
    keras.utils.set_random_seed(2)
    wrapper = AttentionWrapper(GRUCell(4), LuongMonotonicAttention(score="general"),
                               memory_dim=6)
    memory = tf.constant(rng.normal(size=(1, 5, 6)).astype("float32"))
    wrapper.build((None, 2))
    states = wrapper.get_initial_state(memory=memory)
    np.testing.assert_array_equal(states[-1], [[1, 0, 0, 0, 0]])
    x = tf.constant(rng.normal(size=(1, 2)).astype("float32"))
    _, new_states, alignments = wrapper.step(x, states, memory)
    _, expected = wrapper.attention(new_states[0], memory, previous_alignment=states[-1])
    np.testing.assert_allclose(alignments, expected, atol=1e-6)
    _, _, second = wrapper.step(x, new_states, memory)
    _, expected = wrapper.attention(wrapper.step(x, new_states, memory)[1][0], memory,
                                    previous_alignment=alignments)
    np.testing.assert_allclose(second, expected, atol=1e-6)


def test_config_round_trip_gives_the_same_outputs(rng):
    wrapper = make_wrapper(attention_activation="relu", output_attention=False)
    clone = AttentionWrapper.from_config(wrapper.get_config())
    clone.build((None, 2))
    clone.set_weights(wrapper.get_weights())
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    inputs = tf.constant(rng.normal(size=(2, 3, 2)).astype("float32"))
    np.testing.assert_allclose(clone.unroll(inputs, memory)[0], wrapper.unroll(inputs, memory)[0])
    assert clone.get_config() == wrapper.get_config()


def test_bad_arguments():
    with pytest.raises(TypeError, match="cell"):
        AttentionWrapper(keras.layers.LSTMCell(4), BahdanauAttention(3))
    with pytest.raises(TypeError, match="attention"):
        AttentionWrapper(LSTMCell(4), keras.layers.Attention())
    with pytest.raises(ValueError, match="attention_layer_size"):
        AttentionWrapper(LSTMCell(4), BahdanauAttention(3), attention_layer_size=0)
    with pytest.raises(ValueError, match="memory_dim"):
        AttentionWrapper(LSTMCell(4), BahdanauAttention(3)).build((None, 2))
    with pytest.raises(ValueError, match="setup_memory"):
        make_wrapper()(tf.zeros((1, 2)), [tf.zeros((1, 4))] * 2 + [tf.zeros((1, 3)),
                                                                    tf.zeros((1, 2))])
