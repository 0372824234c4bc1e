"""Every kzoo sequence layer: config round trip, .keras save/load without custom_objects, training
in model.fit, inside (kzoo and keras) Bidirectional; bad input gives a clear error."""

import keras
import numpy as np
import tensorflow as tf
import pytest

import kzoo

L = kzoo.layers
LAYERS = {
    "rnn": lambda **kw: L.SimpleRNN(4, **kw),
    "jordan": lambda **kw: L.Jordan(4, output_units=3, **kw),
    "lstm": lambda **kw: L.LSTM(4, peephole=True, dropout=0.1, recurrent_dropout=0.1, **kw),
    "lstm_projected_norm": lambda **kw: L.LSTM(4, proj_units=2, layer_norm=True, **kw),
    "gru": lambda **kw: L.GRU(4, reset_after=False, recurrent_dropout=0.2, **kw),
}


def tagger(name, bidirectional=None):
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(12, 5, mask_zero=True)(inputs)
    layer = LAYERS[name](return_sequences=True)
    if bidirectional is not None:
        layer = bidirectional(layer, merge_mode="sum")
    x = layer(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def token_batch(rng):
    ids = rng.integers(1, 12, size=(6, 7))
    ids[0, 4:] = 0
    ids[3, 2:] = 0
    return ids, rng.integers(0, 3, size=(6, 7))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_config_round_trip(name):
    layer = LAYERS[name](return_sequences=True, go_backwards=True)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


# Every kzoo layer that takes activity_regularizer (a Keras Layer argument), with an input for
# those that regularize one output tensor; None: the configuration round trip alone.
_SEQUENCE = np.linspace(-1, 1, 2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
_FRAMES = np.linspace(-1, 1, 2 * 3 * 4 * 4 * 2, dtype="float32").reshape(2, 3, 4, 4, 2)
ACTIVITY_REGULARIZED = {
    "SimpleRNN": (lambda **kw: L.SimpleRNN(4, **kw), _SEQUENCE),
    "Jordan": (lambda **kw: L.Jordan(4, output_units=3, **kw), _SEQUENCE),
    "LSTM": (lambda **kw: L.LSTM(4, return_sequences=True, **kw), _SEQUENCE),
    "GRU": (lambda **kw: L.GRU(4, **kw), _SEQUENCE),
    "ConvLSTM2D": (lambda **kw: L.ConvLSTM2D(2, 3, padding="same", **kw), _FRAMES),
    "ConvGRU2D": (lambda **kw: L.ConvGRU2D(2, 3, padding="same", **kw), _FRAMES),
    "Bidirectional": (lambda **kw: L.Bidirectional(L.GRU(3), **kw), _SEQUENCE),
    "Dense": (lambda **kw: L.Dense(4, **kw), _SEQUENCE),
    "TokenEmbedding": (lambda **kw: L.TokenEmbedding(10, 4, **kw), np.array([[1, 2, 0]])),
    "LSTMCell": (lambda **kw: L.LSTMCell(4, **kw), None),
    "BahdanauAttention": (lambda **kw: L.BahdanauAttention(4, **kw), None),
    "LuongAttention": (lambda **kw: L.LuongAttention("general", **kw), None),
    "AttentionWrapper": (lambda **kw: L.AttentionWrapper(L.GRUCell(4), L.LuongAttention("dot"),
                                                          **kw), None),
}


@pytest.mark.parametrize("name", sorted(ACTIVITY_REGULARIZED))
def test_activity_regularizer_survives_the_config_and_regularizes_the_output(name):
    """As in Keras: the layer's (not the cell's) output is regularized, the loss divided by the
    batch size, and the regularizer is part of the config."""
    make, inputs = ACTIVITY_REGULARIZED[name]
    layer = make(activity_regularizer=keras.regularizers.L2(0.25))
    config = layer.get_config()
    assert config["activity_regularizer"]["config"] == {"l2": 0.25}
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    if inputs is None:
        return
    outputs = np.asarray(clone(inputs))
    expected = 0.25 * np.sum(np.square(outputs)) / len(inputs)
    np.testing.assert_allclose([float(loss) for loss in clone.losses], [expected], rtol=1e-5)


@pytest.mark.parametrize("name,bidirectional", [(name, None) for name in sorted(LAYERS)] + [
    ("lstm", L.Bidirectional), ("jordan", L.Bidirectional), ("gru", keras.layers.Bidirectional)])
def test_fit_then_keras_file_round_trip(name, bidirectional, rng, tmp_path):
    model = tagger(name, bidirectional)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids, labels = token_batch(rng)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(ids, labels, epochs=2, batch_size=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)   # no custom_objects: registered serializables
    np.testing.assert_allclose(restored.predict(ids, verbose=0), model.predict(ids, verbose=0),
                               atol=1e-6)


def test_bidirectional_backward_pass_reverses_within_each_sequence(rng):
    """Padded rows: the backward direction at valid steps equals running on the unpadded row."""
    layer = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=None)
    x = rng.normal(size=(2, 6, 2)).astype("float32")
    mask = np.array([[True] * 4 + [False] * 2, [False] * 2 + [True] * 4])   # right, left padded
    forward, backward = layer(x, mask=mask)
    for row, valid in ((0, slice(0, 4)), (1, slice(2, 6))):
        alone_forward, alone_backward = layer(x[row:row + 1, valid])
        np.testing.assert_allclose(np.asarray(backward)[row, valid], alone_backward[0], atol=1e-6)
        np.testing.assert_allclose(np.asarray(forward)[row, valid], alone_forward[0], atol=1e-6)
    # Padded positions are zeros in both directions (Bidirectional forces zero_output_for_mask).
    assert np.all(np.asarray(backward)[0, 4:] == 0) and np.all(np.asarray(forward)[1, :2] == 0)


def test_bidirectional_sum_equals_its_two_directions(rng):
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum")
    summed = np.asarray(layer(x))
    forward = np.asarray(layer.forward_layer(x))
    backward = np.asarray(layer.backward_layer(x))[:, ::-1]
    np.testing.assert_allclose(summed, forward + backward, atol=1e-6)


BAD_INPUTS = [
    ("a 2-D input", lambda: L.LSTM(3)(np.zeros((2, 4), "float32")), ValueError,
     r"LSTM layer '.*' expects inputs of rank 3 \(batch, time, features\), got shape \(2, 4\)"),
    ("a string input", lambda: L.GRU(3)(tf.constant([[["a"]]])), TypeError,
     r"GRU layer '.*' expects numeric inputs, got string"),
    ("zero time steps", lambda: L.SimpleRNN(3)(np.zeros((2, 0, 3), "float32")), ValueError,
     r"SimpleRNN layer '.*' got a sequence of zero time steps"),
    ("an unknown activation", lambda: L.LSTM(3, activation="tanhh"), ValueError,
     r"LSTMCell: unknown `activation` 'tanhh'"),
    ("units=0", lambda: L.GRU(0), ValueError, r"GRUCell: `units` must be a positive integer"),
    ("dropout=1.5", lambda: L.LSTM(3, dropout=1.5), ValueError,
     r"LSTMCell: `dropout` must be a float in \[0, 1\)"),
    ("a bad merge mode", lambda: L.Bidirectional(L.LSTM(3), merge_mode="max"), ValueError,
     r"Bidirectional: `merge_mode` must be one of"),
    ("wrong initial state count", lambda: L.LSTM(3)(np.zeros((2, 4, 3), "float32"),
                                                    initial_state=[np.zeros((2, 3), "float32")]),
     ValueError, r"LSTM layer '.*' expects 2 initial state tensor\(s\), got 1"),
    ("a stateful layer without batch size",
     lambda: keras.Sequential([keras.Input((None, 3)), L.LSTM(3, stateful=True)]), ValueError,
     r"is stateful and needs a fixed batch size"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_the_problem(case):
    _, make, error, message = case
    with pytest.raises(error, match=message):
        make()


def test_last_dimension_differing_from_built_weights():
    layer = L.LSTM(3)
    layer(np.zeros((2, 4, 5), "float32"))
    with pytest.raises(ValueError, match=r"LSTM layer '.*' was built for inputs with last "
                                         r"dimension 5, got shape \(2, 4, 6\)"):
        layer(np.zeros((2, 4, 6), "float32"))
