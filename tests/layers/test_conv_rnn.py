import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo.layers as L
from kzoo.layers.conv_rnn import ConvGRU2DCell, ConvLSTM2DCell

BATCH, TIME, ROWS, COLS, CHANNELS, FILTERS = 2, 3, 6, 6, 2, 3


@pytest.fixture
def frames(rng):
    return rng.normal(size=(BATCH, TIME, ROWS, COLS, CHANNELS)).astype("float32")


@pytest.fixture
def mask():
    # Row 0 has a masked step in the middle, row 1 its last step masked.
    return np.array([[True, False, True], [True, True, False]])


def randomize(layer, rng):
    """Random weights everywhere, bias included, so a misplaced bias or gate shows."""
    layer.set_weights([rng.normal(scale=0.4, size=w.shape).astype("float32")
                       for w in layer.get_weights()])


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_conv2d(x, kernel, strides=(1, 1), padding="same"):
    """TensorFlow's conv2d (NHWC) in NumPy: 'same' pads the extra row/col at the bottom/right."""
    (kh, kw), (sh, sw) = kernel.shape[:2], strides
    _, rows, cols, _ = x.shape
    if padding == "same":
        out_rows, out_cols = -(-rows // sh), -(-cols // sw)
        pad_r = max((out_rows - 1) * sh + kh - rows, 0)
        pad_c = max((out_cols - 1) * sw + kw - cols, 0)
        x = np.pad(x, [(0, 0), (pad_r // 2, pad_r - pad_r // 2),
                       (pad_c // 2, pad_c - pad_c // 2), (0, 0)])
    else:
        out_rows, out_cols = (rows - kh) // sh + 1, (cols - kw) // sw + 1
    out = np.zeros(x.shape[:1] + (out_rows, out_cols, kernel.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + sh * out_rows:sh, j:j + sw * out_cols:sw, :]
            out += patch @ kernel[i, j]
    return out


def np_conv_gru(x, kernel, recurrent_kernel, bias, reset_after, strides, padding):
    """ConvGRU from its equations, one frame at a time; returns all hidden states."""
    f = recurrent_kernel.shape[-1] // 3
    x = x.astype("float64")
    h = None
    outputs = []
    for t in range(x.shape[1]):
        xw = np_conv2d(x[:, t], kernel, strides, padding)
        if h is None:
            h = np.zeros(xw.shape[:3] + (f,))
        if reset_after:
            xw = xw + bias[0]
            hu = np_conv2d(h, recurrent_kernel) + bias[1]
            z = sigmoid(xw[..., :f] + hu[..., :f])
            r = sigmoid(xw[..., f:2 * f] + hu[..., f:2 * f])
            candidate = np.tanh(xw[..., 2 * f:] + r * hu[..., 2 * f:])
        else:
            xw = xw + bias
            hu = np_conv2d(h, recurrent_kernel[..., :2 * f])
            z = sigmoid(xw[..., :f] + hu[..., :f])
            r = sigmoid(xw[..., f:2 * f] + hu[..., f:2 * f])
            candidate = np.tanh(xw[..., 2 * f:] + np_conv2d(r * h, recurrent_kernel[..., 2 * f:]))
        h = z * h + (1 - z) * candidate
        outputs.append(h)
    return np.stack(outputs, 1)


@pytest.mark.parametrize("padding, strides, dilation_rate, return_sequences", [
    ("same", 1, 1, True),
    ("valid", 1, 1, False),
    ("same", 2, 1, True),
    ("valid", (1, 2), 1, True),
    ("same", 1, 2, False),
])
def test_conv_lstm_matches_keras(frames, rng, padding, strides, dilation_rate,
                                 return_sequences):
    kwargs = dict(padding=padding, strides=strides, dilation_rate=dilation_rate,
                  return_sequences=return_sequences)
    reference = keras.layers.ConvLSTM2D(FILTERS, 3, **kwargs)
    ours = L.ConvLSTM2D(FILTERS, 3, **kwargs)
    reference(frames)
    ours(frames)
    assert [(w.name, w.shape) for w in ours.weights] == \
        [(w.name, w.shape) for w in reference.weights]
    randomize(reference, rng)
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours(frames), reference(frames), atol=1e-5)


def test_conv_lstm_states_backwards_and_mask_match_keras(frames, rng, mask):
    kwargs = dict(padding="same", return_sequences=True, return_state=True, go_backwards=True)
    reference = keras.layers.ConvLSTM2D(FILTERS, 3, **kwargs)
    ours = L.ConvLSTM2D(FILTERS, 3, **kwargs)
    reference(frames)
    ours(frames)
    randomize(reference, rng)
    ours.set_weights(reference.get_weights())
    expected = reference(frames, mask=mask)
    got = ours(frames, mask=mask)
    assert len(got) == 3
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-5)
    assert got[1].shape == (BATCH, ROWS, COLS, FILTERS)


def test_default_unit_forget_bias_matches_keras_initial_bias():
    layer = L.ConvLSTM2D(FILTERS, 3)
    layer.build((None, None, ROWS, COLS, CHANNELS))
    np.testing.assert_array_equal(layer.cell.bias, [0] * 3 + [1] * 3 + [0] * 6)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("padding, strides", [("same", 1), ("valid", 2)])
def test_conv_gru_matches_numpy_equations(frames, rng, reset_after, padding, strides):
    layer = L.ConvGRU2D(FILTERS, 3, padding=padding, strides=strides, reset_after=reset_after,
                        return_sequences=True)
    layer(frames)
    cell = layer.cell
    assert cell.kernel.shape == (3, 3, CHANNELS, 3 * FILTERS)
    assert cell.recurrent_kernel.shape == (3, 3, FILTERS, 3 * FILTERS)
    assert cell.bias.shape == ((2, 3 * FILTERS) if reset_after else (3 * FILTERS,))
    randomize(layer, rng)
    kernel, recurrent_kernel, bias = layer.get_weights()
    expected = np_conv_gru(frames, kernel, recurrent_kernel, bias, reset_after,
                           (strides, strides), padding)
    np.testing.assert_allclose(layer(frames), expected, atol=1e-5)


@pytest.mark.parametrize("cell_class, cell_kwargs", [
    (ConvLSTM2DCell, {}),
    (ConvGRU2DCell, {"reset_after": True}),
    (ConvGRU2DCell, {"reset_after": False}),
])
def test_cell_stepped_by_keras_rnn_equals_layer(frames, rng, mask, cell_class, cell_kwargs):
    layer_class = L.ConvLSTM2D if cell_class is ConvLSTM2DCell else L.ConvGRU2D
    kwargs = dict(padding="same", **cell_kwargs)
    rnn_kwargs = dict(return_sequences=True, return_state=True, go_backwards=True)
    stepped = keras.layers.RNN(cell_class(FILTERS, 3, **kwargs), **rnn_kwargs)
    ours = layer_class(FILTERS, 3, **kwargs, **rnn_kwargs)
    stepped(frames)
    ours(frames)
    randomize(ours, rng)
    stepped.set_weights(ours.get_weights())
    for g, e in zip(ours(frames, mask=mask), stepped(frames, mask=mask)):
        np.testing.assert_allclose(g, e, atol=1e-5)


def test_input_transform_of_a_sequence_equals_frame_by_frame(frames):
    cell = ConvLSTM2DCell(FILTERS, 3, strides=2, padding="same")
    cell.build((None, ROWS, COLS, CHANNELS))
    assert cell.state_size == [(3, 3, FILTERS), (3, 3, FILTERS)]
    assert cell.step_input_rank() == 4
    whole = cell._input_transform(tf.constant(frames))
    for t in range(TIME):
        np.testing.assert_allclose(whole[:, t], cell._input_transform(frames[:, t]), atol=1e-6)


def test_stateful_continues_from_the_last_state(frames):
    whole = L.ConvGRU2D(FILTERS, 3, padding="same", return_sequences=True)
    split = L.ConvGRU2D(FILTERS, 3, padding="same", return_sequences=True, stateful=True)
    whole(frames)
    split.build((BATCH, TIME, ROWS, COLS, CHANNELS))
    split.cell.set_weights(whole.cell.get_weights())
    joined = np.concatenate([split(frames[:, :2]), split(frames[:, 2:])], 1)
    np.testing.assert_allclose(joined, whole(frames), atol=1e-5)


@pytest.mark.parametrize("layer_class, extra", [
    (L.ConvLSTM2D, {"unit_forget_bias": False}),
    (L.ConvGRU2D, {"reset_after": False}),
])
def test_config_round_trip(frames, layer_class, extra):
    layer = layer_class(FILTERS, (3, 2), strides=(1, 2), padding="same", dropout=0.1,
                        return_sequences=True, go_backwards=True, **extra)
    layer(frames)
    config = layer.get_config()
    assert config["filters"] == FILTERS and config["kernel_size"] == (3, 2)
    for dense_only in ("units", "peephole", "proj_units", "layer_norm"):
        assert dense_only not in config
    clone = layer_class.from_config(config)
    assert clone.get_config() == config
    clone(frames)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(frames), layer(frames), atol=1e-6)
    cell_clone = type(layer.cell).from_config(layer.cell.get_config())
    assert cell_clone.get_config() == layer.cell.get_config()


def test_keras_file_round_trip_and_fit(frames, tmp_path):
    inputs = keras.Input((None, ROWS, COLS, CHANNELS))
    x = L.ConvLSTM2D(FILTERS, 3, padding="same", return_sequences=True, dropout=0.2,
                     recurrent_dropout=0.2)(inputs)
    x = L.ConvGRU2D(2, 3, strides=2, padding="valid")(x)
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(frames, np.ones((BATCH, 1), "float32"), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "conv_rnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[1], L.ConvLSTM2D)
    assert isinstance(loaded.layers[2], L.ConvGRU2D)
    np.testing.assert_allclose(loaded.predict(frames, verbose=0),
                               model.predict(frames, verbose=0), atol=1e-6)


def test_bad_inputs_and_arguments_raise_clear_errors(frames):
    layer = L.ConvLSTM2D(FILTERS, 3)
    with pytest.raises(ValueError, match=r"rank 5 \(batch, time, rows, cols, channels\)"):
        layer(np.zeros((BATCH, TIME, CHANNELS), "float32"))
    layer(frames)
    with pytest.raises(ValueError, match="built for frames of 6x6"):
        layer(np.zeros((BATCH, TIME, 7, 7, CHANNELS), "float32"))
    with pytest.raises(ValueError, match="last dimension 2"):
        layer(np.zeros((BATCH, TIME, ROWS, COLS, 5), "float32"))
    with pytest.raises(ValueError, match="channels_last"):
        L.ConvLSTM2D(FILTERS, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="channels_last"):
        L.ConvGRU2D(FILTERS, 3, data_format="channels_first")
    for option in ({"peephole": True}, {"layer_norm": True}, {"proj_units": 2}):
        with pytest.raises(ValueError, match=f"`{next(iter(option))}`"):
            L.ConvLSTM2D(FILTERS, 3, **option)
    with pytest.raises(ValueError, match="`padding`"):
        L.ConvGRU2D(FILTERS, 3, padding="causal")
    with pytest.raises(ValueError, match="`kernel_size`"):
        ConvLSTM2DCell(FILTERS, (3, 3, 3))
    with pytest.raises(ValueError, match="dilation_rate"):
        ConvGRU2DCell(FILTERS, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        L.ConvLSTM2D(FILTERS, 7)(frames)


def test_conv_lstm_converts_to_builtin_tflite(rng):
    from ai_edge_litert.interpreter import Interpreter

    inputs = keras.Input((None, ROWS, COLS, CHANNELS))
    outputs = L.ConvLSTM2D(FILTERS, 3, padding="same", return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    with L.trace_target("tflite"):
        function = tf.function(
            lambda x: model(x),
            input_signature=[tf.TensorSpec([None, None, ROWS, COLS, CHANNELS], tf.float32)])
        concrete = function.get_concrete_function()
    # Without the model as trackable the converter freezes the weights read inside WHILE.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    # Batch and time both differ from one run to the next; 11 steps cross an unrolled block.
    for shape in [(1, 2), (BATCH, 11)]:
        x = rng.normal(size=(*shape, ROWS, COLS, CHANNELS)).astype("float32")
        source = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(source, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, model(x), atol=1e-5)


# -- ConvLSTM1D and ConvLSTM3D: Keras' layers on the same conv cell with one or three axes --------
CONV_1D_3D = [(L.ConvLSTM1D, keras.layers.ConvLSTM1D, (ROWS,)),
              (L.ConvLSTM3D, keras.layers.ConvLSTM3D, (3, 4, 4))]


@pytest.mark.parametrize("layer_class,keras_class,frame", CONV_1D_3D, ids=["1d", "3d"])
def test_conv_lstm_1d_3d_match_keras(layer_class, keras_class, frame, rng, mask):
    x = rng.normal(size=(BATCH, TIME, *frame, CHANNELS)).astype("float32")
    keras_layer = keras_class(FILTERS, 3, padding="same", strides=2, return_sequences=True,
                              return_state=True, go_backwards=True)
    expected = keras_layer(x, mask=mask)
    randomize(keras_layer, rng)
    expected = keras_layer(x, mask=mask)
    layer = layer_class.from_config(keras_layer.get_config())
    layer.build(x.shape)
    layer.set_weights(keras_layer.get_weights())
    for got, want in zip(layer(x, mask=mask), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert layer.get_config() == keras_layer.get_config() | {"name": layer.name}


def test_conv_lstm_1d_3d_keras_file_round_trip_and_builtin_tflite(rng, tmp_path):
    """One model with both layers: saved and loaded as .keras, and converted to a TFLite file
    of builtin ops that LiteRT runs with Keras' numbers."""
    from ai_edge_litert.interpreter import Interpreter

    sequence_1d = keras.Input((None, ROWS, CHANNELS))
    sequence_3d = keras.Input((None, 2, 4, 4, CHANNELS))
    h_1d = L.ConvLSTM1D(2, 3, padding="same")(sequence_1d)
    h_3d = L.ConvLSTM3D(2, 3, padding="same", go_backwards=True)(sequence_3d)
    outputs = keras.layers.Concatenate()([keras.layers.Flatten()(h_1d),
                                          keras.layers.Flatten()(h_3d)])
    model = keras.Model([sequence_1d, sequence_3d], outputs)
    x = [rng.normal(size=(BATCH, TIME, ROWS, CHANNELS)).astype("float32"),
         rng.normal(size=(BATCH, TIME, 2, 4, 4, CHANNELS)).astype("float32")]
    expected = model(x)
    model.save(tmp_path / "conv.keras")
    loaded = keras.saving.load_model(tmp_path / "conv.keras")
    assert [type(layer) for layer in loaded.layers[2:4]] == [L.ConvLSTM1D, L.ConvLSTM3D]
    np.testing.assert_allclose(loaded(x), expected, atol=1e-6)

    with L.trace_target("tflite"):
        function = tf.function(lambda a, b: model([a, b]), input_signature=[
            tf.TensorSpec([None, None, ROWS, CHANNELS], tf.float32),
            tf.TensorSpec([None, None, 2, 4, 4, CHANNELS], tf.float32)])
        concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    by_rank = {value.ndim: value for value in x}
    for detail in interpreter.get_input_details():
        interpreter.resize_tensor_input(detail["index"], by_rank[len(detail["shape"])].shape)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], by_rank[len(detail["shape"])])
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, atol=1e-5)
