"""kzoo.layers.Dense: keras.layers.Dense's results and weights, one TFLite op on sequences."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import kzoo

L = kzoo.layers


def pair(rank, **kwargs):
    layer, reference = L.Dense(5, **kwargs), keras.layers.Dense(5, **kwargs)
    shape = (None,) * (rank - 1) + (3,)
    layer.build(shape)
    reference.build(shape)
    rng = np.random.default_rng(rank)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    reference.set_weights(layer.get_weights())
    return layer, reference


@pytest.mark.parametrize("rank", [2, 3, 4])
@pytest.mark.parametrize("kwargs", [{}, {"activation": "softmax"}, {"use_bias": False,
                                                                    "activation": "tanh"}])
def test_equals_keras_dense_values_and_gradients(rank, kwargs):
    layer, reference = pair(rank, **kwargs)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 6)[:rank - 1] + (3,)),
                    tf.float32)
    grads = []
    for dense in (layer, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = dense(x)
            loss = tf.reduce_sum(y * tf.range(5, dtype=tf.float32))
        grads.append((y, *tape.gradient(loss, [x, *dense.trainable_weights])))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert grads[0][0].shape == x.shape[:-1] + (5,)


def test_keras_file_and_config_round_trip(tmp_path):
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, L.Dense(5, activation="relu", name="head")(inputs))
    x = np.random.default_rng(1).normal(size=(2, 7, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.get_layer("head"), L.Dense)
    np.testing.assert_array_equal(restored(x), model(x))
    clone = L.Dense.from_config(model.get_layer("head").get_config())
    assert clone.get_config() == model.get_layer("head").get_config()


@pytest.mark.parametrize("mode", ["int8", "float8"])
def test_keras_quantization_quantizes_it_like_keras_dense(mode):
    """model.quantize: Keras refuses subclasses of Dense; this one's quantized call is Dense's."""
    x = np.random.default_rng(3).normal(size=(2, 7, 3)).astype("float32")
    outputs = []
    for dense in (L.Dense, keras.layers.Dense):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((None, 3))
        model = keras.Model(inputs, dense(5, name="head")(inputs))
        model.quantize(mode)
        assert model.get_layer("head").quantization_mode == mode
        outputs.append(np.asarray(model(x)))
    np.testing.assert_array_equal(*outputs)


def test_sparse_inputs_as_keras_dense():
    layer, reference = pair(2)
    sparse = tf.sparse.from_dense(np.eye(3, dtype="float32"))
    np.testing.assert_allclose(layer(sparse), reference(sparse), atol=1e-6)


def test_a_sequence_converts_to_one_fully_connected_op(tmp_path):
    """keras.layers.Dense on (batch, time, features) converts to eleven ops (tf.tensordot)."""
    import kzoo.export

    inputs = keras.Input((None, 3), name="inputs")
    model = keras.Model(inputs, L.Dense(5, activation="relu")(inputs))
    path = kzoo.export.tflite(model, tmp_path / "m.tflite")
    interpreter = Interpreter(model_path=path)
    assert [op["op_name"] for op in interpreter._get_ops_details()] == ["FULLY_CONNECTED"]
    x = np.random.default_rng(2).normal(size=(2, 6, 3)).astype("float32")
    runner = interpreter.get_signature_runner("serving_default")
    outputs = runner(inputs=x, **{name: np.array([6, 6], np.int32)
                                  for name in runner.get_input_details() if name != "inputs"})
    np.testing.assert_allclose(outputs["outputs"], model(x), atol=1e-6)
