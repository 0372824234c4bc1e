"""AttentionWrapper: one step against NumPy, unroll against stepping, keras.layers.RNN, config;
tfa's attention_layer, cell_input_fn and several mechanisms."""

import json

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


# -- tfa's attention_layer, cell_input_fn and several mechanisms --------------------------------
@keras.saving.register_keras_serializable(package="kzoo_tests")
def inputs_only(inputs, attention):
    return inputs


@keras.saving.register_keras_serializable(package="kzoo_tests")
class Decoder(keras.Model):
    """A wrapper unrolled over (inputs, memory, memory_mask), to save it in a .keras file."""

    def __init__(self, wrapper, **kwargs):
        super().__init__(**kwargs)
        self.wrapper = wrapper

    def call(self, inputs):
        x, memory, memory_mask = inputs
        outputs, history, _ = self.wrapper.unroll(x, memory, memory_mask)
        return outputs, history

    def get_config(self):
        return {**super().get_config(),
                "wrapper": keras.saving.serialize_keras_object(self.wrapper)}

    @classmethod
    def from_config(cls, config):
        config["wrapper"] = keras.saving.deserialize_keras_object(config["wrapper"])
        return cls(**config)


def two_mechanisms(**kwargs):
    keras.utils.set_random_seed(3)
    wrapper = AttentionWrapper(
        LSTMCell(4), [BahdanauAttention(5), LuongMonotonicAttention("general")], memory_dim=6,
        **kwargs)
    wrapper.build((None, 2))
    return wrapper


def test_attention_layer_object_equals_attention_layer_size(rng):
    wrapper = make_wrapper()
    custom = AttentionWrapper(LSTMCell(4), BahdanauAttention(5), memory_dim=6,
                              attention_layer=keras.layers.Dense(3, use_bias=False,
                                                                 activation="tanh"))
    custom.build((None, 2))
    custom.set_weights(wrapper.get_weights())
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    inputs = tf.constant(rng.normal(size=(2, 3, 2)).astype("float32"))
    assert custom.attention_size == 3
    np.testing.assert_allclose(custom.unroll(inputs, memory)[0], wrapper.unroll(inputs, memory)[0],
                               atol=1e-6)
    clone = AttentionWrapper.from_config(custom.get_config())
    assert isinstance(clone.attention_layer, keras.layers.Dense)
    assert clone.get_config() == custom.get_config()
    with pytest.raises(ValueError, match="not both"):
        AttentionWrapper(LSTMCell(4), BahdanauAttention(5), attention_layer_size=3,
                         attention_layer=keras.layers.Dense(3))


def test_cell_input_fn_decides_what_the_cell_reads(rng):
    plain = make_wrapper(input_feeding=False)
    custom = make_wrapper(cell_input_fn=inputs_only)
    assert custom.cell.kernel.shape == (2, 16)       # the probe found the inputs' width
    custom.set_weights(plain.get_weights())
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    inputs = tf.constant(rng.normal(size=(2, 3, 2)).astype("float32"))
    np.testing.assert_allclose(custom.unroll(inputs, memory)[0], plain.unroll(inputs, memory)[0],
                               atol=1e-6)
    assert AttentionWrapper.from_config(custom.get_config()).cell_input_fn is inputs_only
    with pytest.raises(ValueError, match="cannot be saved in a config"):
        make_wrapper(cell_input_fn=lambda x, a: x).get_config()
    with pytest.raises(ValueError, match="input_feeding=False"):
        make_wrapper(cell_input_fn=inputs_only, input_feeding=False)


def test_several_mechanisms_concatenate_their_attention(rng):
    wrapper = two_mechanisms(attention_layer_size=[3, 2])
    first, second = wrapper.mechanisms
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    mask = tf.constant([[True] * 4, [True] * 2 + [False] * 2])
    inputs = tf.constant(rng.normal(size=(2, 3, 2)).astype("float32"))
    states = wrapper.get_initial_state(memory=memory)
    assert len(states) == 5 and states[2].shape == (2, 5)
    np.testing.assert_array_equal(states[4], [[1, 0, 0, 0], [1, 0, 0, 0]])  # monotonic α_0
    outputs, (history_1, history_2), final = wrapper.unroll(inputs, memory, mask)
    assert outputs.shape == (2, 3, 5) and history_1.shape == history_2.shape == (2, 3, 4)
    for t in range(3):
        # The step by hand: one cell step, each mechanism on its output, a_t concatenated.
        x = tf.concat([inputs[:, t], states[2]], -1)
        cell_output, cell_states = wrapper.cell.step(wrapper.cell.project_inputs(x), states[:2])
        context_1, alignment_1 = first(cell_output, memory, mask=mask)
        context_2, alignment_2 = second(cell_output, memory, mask=mask,
                                        previous_alignment=states[4])
        layer_1, layer_2 = wrapper.attention_layers
        attention = tf.concat([layer_1(tf.concat([cell_output, context_1], -1)),
                               layer_2(tf.concat([cell_output, context_2], -1))], -1)
        np.testing.assert_allclose(outputs[:, t], attention, atol=1e-6)
        np.testing.assert_allclose(history_1[:, t], alignment_1, atol=1e-6)
        np.testing.assert_allclose(history_2[:, t], alignment_2, atol=1e-6)
        states = [*cell_states, attention, alignment_1, alignment_2]
    for got, want in zip(final, states):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="must be a list of 2 entries"):
        two_mechanisms(attention_layer_size=3)
    with pytest.raises(ValueError, match="1 entries for 2 attention"):
        two_mechanisms(attention_layer=[keras.layers.Dense(2)])


def test_keras_file_round_trip_keeps_mechanisms_layers_and_cell_input_fn(rng, tmp_path):
    wrapper = two_mechanisms(attention_layer=[keras.layers.Dense(3), keras.layers.Dense(2)],
                             cell_input_fn=inputs_only)
    inputs = (rng.normal(size=(2, 3, 2)).astype("float32"),
              rng.normal(size=(2, 4, 6)).astype("float32"),
              np.array([[True] * 4, [True] * 3 + [False]]))
    model = Decoder(wrapper)
    expected = model(inputs)
    path = str(tmp_path / "decoder.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    got = loaded(inputs)
    for g, w in zip(tf.nest.flatten(got), tf.nest.flatten(expected)):
        np.testing.assert_allclose(g, w, atol=1e-6)
    clone = loaded.wrapper
    assert [type(m) for m in clone.mechanisms] == [BahdanauAttention, LuongMonotonicAttention]
    assert clone.cell_input_fn is inputs_only
    as_json = lambda config: json.loads(json.dumps(config))  # noqa: E731 (tuples become lists)
    assert as_json(clone.get_config()) == as_json(wrapper.get_config())


@keras.saving.register_keras_serializable(package="kzoo_tests")
def half_previous_alignment(scores, previous_alignment):
    return 0.5 * tf.nn.softmax(scores) + 0.5 * previous_alignment


def test_probability_fn_of_the_previous_alignment_gets_the_states_alignment(rng):
    keras.utils.set_random_seed(5)
    wrapper = AttentionWrapper(GRUCell(4), BahdanauAttention(
        5, probability_fn=half_previous_alignment), memory_dim=6)
    wrapper.build((None, 2))
    softmax = BahdanauAttention(5)
    softmax.build((None, 4), (None, None, 6))
    softmax.set_weights(wrapper.attention.get_weights())
    memory = tf.constant(rng.normal(size=(2, 4, 6)).astype("float32"))
    states = wrapper.get_initial_state(memory=memory)
    previous = np.zeros((2, 4), "float32")                     # tfa's initial alignments
    for _ in range(2):
        _, states, alignments = wrapper.step(tf.constant(rng.normal(size=(2, 2)), tf.float32),
                                             states, memory)
        _, weights = softmax(states[0], memory)
        np.testing.assert_allclose(alignments, 0.5 * weights + 0.5 * previous, atol=1e-6)
        previous = alignments.numpy()
