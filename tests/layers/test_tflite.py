"""A stack of kzoo LSTM, GRU (go_backwards) and SimpleRNN converts to builtin-only TFLite with
dynamic batch and time, and runs in LiteRT equal to Keras."""

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.export import lite

L = kzoo.layers


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(5)
    layers = [L.LSTM(6, return_sequences=True), L.GRU(5, return_sequences=True,
                                                        go_backwards=True),
              L.SimpleRNN(4, return_sequences=True)]
    x = tf.zeros((1, 2, 3))
    for layer in layers:
        x = layer(x)
        for variable in layer.trainable_weights:
            variable.assign(rng.normal(scale=0.4, size=variable.shape).astype("float32"))

    def forward(inputs):
        for layer in layers:
            inputs = layer(inputs)
        return inputs

    content = lite.convert(forward, [tf.TensorSpec([None, None, 3], tf.float32)])
    return forward, content


def test_only_builtin_ops(stack):
    _, content = stack
    assert b"Flex" not in content
    assert "WHILE" in lite.op_names(content)


@pytest.mark.parametrize("batch,time", [(1, 1), (4, 7), (2, 50)])
def test_litert_equals_keras_at_dynamic_shapes(stack, batch, time):
    forward, content = stack
    inputs = np.random.default_rng(batch * 100 + time).normal(
        size=(batch, time, 3)).astype("float32")
    (result,) = lite.run(content, inputs)
    np.testing.assert_allclose(result, np.asarray(forward(inputs)), atol=1e-5)
