"""Every Keras argument: a Keras layer's config loads into kzoo's namesake and, with the same
weights, gives Keras' outputs; ``unroll``, ``implementation`` and ``use_cudnn`` are taken as
Keras takes them; ``kzoo.layers.RNN`` runs Keras' own cells, stacks and custom cells."""

import keras
import numpy as np
import pytest

import kzoo
from kzoo.layers import cudnn

L = kzoo.layers
BATCH, TIME, FEATURES = 2, 4, 3
MASK = np.array([[True, True, True, False], [True, True, True, True]])

# Keys kzoo's config has and Keras' has not: kzoo's own options (LSTM variants) and the
# arguments Keras takes but does not write (use_cudnn, implementation; SimpleRNN's seed).
KZOO_ONLY_KEYS = {"use_cudnn", "implementation", "seed", "use_forget_gate", "peephole",
                  "layer_norm", "norm_epsilon", "proj_units"}


@pytest.fixture(scope="module")
def sequences():
    return np.random.default_rng(7).normal(size=(BATCH, TIME, FEATURES)).astype("float32")


def assert_all_close(expected, got):
    expected, got = keras.tree.flatten(expected), keras.tree.flatten(got)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), atol=1e-6)


@pytest.mark.parametrize("keras_layer", [
    lambda: keras.layers.GRU(4, implementation=0, return_sequences=True, go_backwards=True),
    lambda: keras.layers.GRU(4, reset_after=False, return_state=True, use_cudnn=False),
    lambda: keras.layers.LSTM(4, unroll=True, return_sequences=True, return_state=True,
                              implementation=1, zero_output_for_mask=True),
    lambda: keras.layers.SimpleRNN(4, activation="relu", unroll=True, seed=3,
                                   activity_regularizer="l2"),
], ids=["gru_implementation_0", "gru_reset_before", "lstm_unroll", "simple_rnn"])
def test_a_keras_config_loads_with_keras_outputs(keras_layer, sequences):
    layer = keras_layer()
    expected = layer(sequences, mask=MASK)
    config = layer.get_config()
    kzoo_layer = getattr(L, type(layer).__name__).from_config(config)
    kzoo_layer.build(sequences.shape)
    kzoo_layer.set_weights(layer.get_weights())
    assert_all_close(expected, kzoo_layer(sequences, mask=MASK))
    kzoo_config = kzoo_layer.get_config()
    assert set(config) <= set(kzoo_config)
    assert set(kzoo_config) - set(config) <= KZOO_ONLY_KEYS
    assert {k: v for k, v in kzoo_config.items() if k in config and k != "name"} == \
        {k: v for k, v in config.items() if k != "name"}


def test_every_keras_constructor_argument_is_taken():
    """Each parameter of a Keras 3 constructor is accepted by kzoo's namesake with Keras'
    default, and kept in the config with the value Keras writes (or, where Keras writes none,
    the default)."""
    import inspect

    for name in ("SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
                 "SimpleRNNCell", "LSTMCell", "GRUCell", "RNN"):
        keras_class = getattr(keras.layers, name)
        first = ({"cell": keras.layers.GRUCell(2)} if name == "RNN" else
                 {"filters": 2, "kernel_size": 3} if name.startswith("Conv") else {"units": 2})
        defaults = {k: p.default for k, p in inspect.signature(keras_class.__init__)
                    .parameters.items() if k not in ("self", "kwargs", *first)}
        keras_config = keras_class(**first, **defaults).get_config()
        config = getattr(L, name)(**first, **defaults).get_config()
        for key, default in defaults.items():
            assert config[key] == keras_config.get(key, default), (name, key)


def test_use_cudnn_is_checked_and_true_raises_where_cudnn_cannot_run(sequences):
    with pytest.raises(ValueError, match=r"`use_cudnn` must be one of \('auto', True, False\)"):
        L.LSTM(3, use_cudnn="yes")
    fixed = {"kernel_initializer": "ones", "recurrent_initializer": "ones"}
    np.testing.assert_allclose(L.GRU(3, use_cudnn=False, **fixed)(sequences),
                               L.GRU(3, **fixed)(sequences), atol=1e-6)
    # A configuration cuDNN never runs raises on every machine, as in Keras.
    with pytest.raises(ValueError, match=r"use_cudnn=True .* \(GRU with reset_after=False\)"):
        L.GRU(3, use_cudnn=True, reset_after=False)(sequences)
    if not cudnn.gpu_available():
        with pytest.raises(ValueError, match=r"use_cudnn=True .* \(TensorFlow sees no GPU\)"):
            L.LSTM(3, use_cudnn=True)(sequences)
    assert not hasattr(L.SimpleRNN(2), "use_cudnn")       # as Keras' SimpleRNN


def test_unroll_needs_a_defined_time_axis_as_in_keras():
    with pytest.raises(ValueError, match="unroll=True and needs a defined time axis"):
        L.LSTM(3, unroll=True)(keras.Input((None, FEATURES)))
    assert L.LSTM(3, unroll=True)(keras.Input((TIME, FEATURES))).shape == (None, 3)


def test_integer_and_bool_inputs_are_cast_as_keras_casts_them():
    ids = np.array([[[1, 0], [2, 1]]], "int32")
    layer = keras.layers.GRU(3)
    expected = layer(ids)
    kzoo_layer = L.GRU(3)
    kzoo_layer.build(ids.shape)
    kzoo_layer.set_weights(layer.get_weights())
    np.testing.assert_allclose(kzoo_layer(ids), expected, atol=1e-6)
    np.testing.assert_allclose(kzoo_layer(ids > 0), kzoo_layer((ids > 0).astype("float32")),
                               atol=0)


class SumCell(keras.layers.Layer):
    """A custom cell (Keras' test cell OneStateRNNCell): h' = x K + h R, output h'."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        output = keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(
            states[0], self.recurrent_kernel)
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@pytest.mark.parametrize("cell", [
    lambda: keras.layers.GRUCell(4),
    lambda: [keras.layers.LSTMCell(4), keras.layers.SimpleRNNCell(2)],
    lambda: keras.layers.StackedRNNCells([keras.layers.GRUCell(3), keras.layers.LSTMCell(2)]),
    lambda: SumCell(3),
], ids=["gru_cell", "list", "stacked_cells", "custom_cell"])
def test_rnn_equals_keras_rnn(cell, sequences):
    keras_layer = keras.layers.RNN(cell(), return_sequences=True, return_state=True,
                                   go_backwards=True)
    expected = keras_layer(sequences, mask=MASK)
    layer = L.RNN(keras_layer.cell, return_sequences=True, return_state=True, go_backwards=True)
    assert_all_close(expected, layer(sequences, mask=MASK))
    # The same from Keras' config, weights set afterwards.
    loaded = L.RNN.from_config(keras_layer.get_config(), custom_objects={"SumCell": SumCell})
    loaded.build(sequences.shape)
    loaded.set_weights(keras_layer.get_weights())
    assert_all_close(expected, loaded(sequences, mask=MASK))
    assert layer.compute_output_shape(sequences.shape) == \
        keras_layer.compute_output_shape(sequences.shape)


def test_rnn_maps_keras_standard_cells_to_kzoo_and_keeps_custom_cells():
    assert isinstance(L.RNN(keras.layers.LSTMCell(2)).cell, L.LSTMCell)
    stack = L.RNN([keras.layers.GRUCell(2), L.SimpleRNNCell(2)]).cell
    assert [type(c) for c in stack.cells] == [L.GRUCell, L.SimpleRNNCell]
    custom = SumCell(2)
    assert L.RNN(custom).cell is custom
    with pytest.raises(ValueError, match="`cell` must have a `state_size`"):
        L.RNN(keras.layers.Dense(2))


def test_stacked_rnn_keras_file_round_trip(sequences, tmp_path):
    inputs = keras.Input((None, FEATURES))
    outputs = L.RNN([L.LSTMCell(3, dropout=0.2), keras.layers.GRUCell(2)])(inputs)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "rnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[1], L.RNN)
    np.testing.assert_allclose(loaded(sequences), model(sequences), atol=1e-6)


def test_rnn_over_a_stack_with_a_custom_cell_converts_to_builtin_tflite(sequences):
    """The generic loop has the TFLite form of kzoo's own layers: builtin ops only, batch and
    time dynamic, LiteRT's numbers equal Keras'."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    inputs = keras.Input((None, FEATURES))
    outputs = L.RNN([keras.layers.LSTMCell(4), SumCell(2)], return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    with L.trace_target("tflite"):
        concrete = tf.function(lambda x: model(x), input_signature=[
            tf.TensorSpec([None, None, FEATURES], tf.float32)]).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    source = interpreter.get_input_details()[0]["index"]
    for x in (sequences, sequences[:1, :2]):
        interpreter.resize_tensor_input(source, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, model(x), atol=1e-5)
