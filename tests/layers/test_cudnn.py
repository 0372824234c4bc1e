"""cuDNN: which cells and calls qualify (the cell's own method and the checks every kernel
shares), that the plan runs the kernel only with a GPU in a Keras trace, and, on a machine with a
GPU, that Keras' kernel computes what the scan engine computes."""

from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers import cudnn

L = kzoo.layers
GPU = cudnn.gpu_available()


def built(layer):
    layer.build((2, 5, 3, 3, 1) if isinstance(layer, L.ConvLSTM2D) else (2, 5, 3))
    return layer.cell


@pytest.mark.parametrize("layer,reason", [
    (L.LSTM(4), None),
    (L.GRU(4), None),
    (L.LSTM(4, dropout=0.3), None),                 # input dropout happens before the kernel
    (L.LSTM(4, peephole=True), "LSTM variant"),
    (L.LSTM(4, layer_norm=True), "LSTM variant"),
    (L.LSTM(4, proj_units=2), "LSTM variant"),
    (L.LSTM(4, use_forget_gate=False), "LSTM variant"),
    (L.GRU(4, reset_after=False), "reset_after=False"),
    (L.LSTM(4, activation="relu"), "activations"),
    (L.GRU(4, recurrent_activation="hard_sigmoid"), "activations"),
    (L.LSTM(4, use_bias=False), "use_bias=False"),
    (L.SimpleRNN(4), "SimpleRNNCell has no cuDNN kernel"),
    (L.Jordan(4, 2), "JordanCell has no cuDNN kernel"),
    (L.ConvLSTM2D(2, 2), "convolutional cell"),
    (L.LSTM(4, dtype="float64"), "dtype"),
])
def test_which_configurations_go_to_cudnn(layer, reason):
    refusal = cudnn.cudnn_refusal(built(layer))
    assert refusal is None if reason is None else reason in refusal


def test_recurrent_dropout_stays_portable():
    cell = built(L.LSTM(4))
    assert "recurrent dropout" in cudnn.cudnn_refusal(cell, recurrent_mask=tf.ones((2, 4)))


def test_the_plan_runs_cudnn_only_with_a_gpu_in_the_default_form_and_a_keras_trace():
    """On this machine, with or without a GPU: a standard LSTM's plan is cuDNN exactly where
    TensorFlow sees a GPU; never in another loop form or a trace for an export."""
    layer = L.LSTM(4)
    x = tf.zeros((2, 5, 3))
    layer(x)
    with L.record_plans() as plans:
        layer(x)
        with L.scan_mode("tensorarray"):
            layer(x)
        for target in ("portable", "tflite"):
            with L.trace_target(target):
                tf.function(lambda x: layer(x))(x)
    (facts, plan), *others = plans
    assert facts.cudnn and facts.gpu == GPU
    assert (plan.loop == "cudnn") == GPU
    assert [other.loop for _, other in others] == ["tensorarray", "tensorarray", "tflite"]


@pytest.mark.parametrize("mask,fits", [
    ([[1, 1, 1], [1, 1, 0]], True),
    ([[1, 1, 1], [0, 1, 1]], False),       # left padding
    ([[1, 1, 1], [0, 0, 0]], False),       # a fully masked row
    ([[1, 0, 1], [1, 1, 1]], False),       # a hole
])
def test_masks_cudnn_can_take(mask, fits):
    assert bool(cudnn.mask_fits_cudnn(tf.constant(np.array(mask, bool)))) is fits


def _fake_keras_kernel(calls):
    """Stands in for keras' cuDNN lstm/gru: records the call, returns recognisable values."""
    def kernel(inputs, *args, **kwargs):
        calls.append(kwargs)
        batch, time = inputs.shape[0], inputs.shape[1]
        units = kwargs["recurrent_kernel"].shape[0]
        states = [tf.fill([batch, units], 7.0) for _ in args[:-1]]
        return tf.fill([batch, units], 7.0), tf.fill([batch, time, units], 7.0), states
    return kernel


@pytest.mark.parametrize("layer_cls,kernel_name", [(L.LSTM, "lstm"), (L.GRU, "gru")])
def test_a_gpu_sends_standard_layers_to_keras_cudnn_kernel_with_our_weights(layer_cls,
                                                                          kernel_name, rng):
    """With a GPU (pretended here, so that it runs anywhere) the layer calls Keras' kernel with
    its own weights, and the scan engine for what cuDNN cannot take."""
    layer = layer_cls(4, return_sequences=True, return_state=True, zero_output_for_mask=True)
    inputs = rng.normal(size=(2, 5, 3)).astype("float32")
    with L.scan_mode("tensorarray"):
        reference = layer(inputs)
    calls = []
    with mock.patch.object(cudnn, "gpu_available", lambda: True), \
            mock.patch.object(cudnn.keras_rnn_module(), kernel_name, _fake_keras_kernel(calls)):
        on_gpu = layer(inputs)
        # The portable graph exports trace never asks.
        with L.scan_mode("tensorarray"):
            portable = layer(inputs)
        # A mask cuDNN cannot take runs the scan engine when the graph runs.
        mask = np.array([[True] * 5, [False] * 5])
        masked = tf.function(lambda x: layer(x, mask=mask))(tf.constant(inputs))
    assert len(calls) == 2            # the direct call, and the traced tf.cond branch
    assert calls[0]["kernel"] is layer.cell.kernel
    assert calls[0]["recurrent_kernel"] is layer.cell.recurrent_kernel
    assert calls[0]["bias"] is layer.cell.bias
    np.testing.assert_array_equal(np.asarray(on_gpu[0]), 7.0)
    for a, b in zip(portable, reference):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # Row 1 is fully masked: its state is the initial (zero) state, not the fake kernel's 7s.
    np.testing.assert_array_equal(np.asarray(masked[1][1]), 0.0)


@pytest.mark.skipif(not GPU, reason="the cuDNN kernel needs a GPU")
@pytest.mark.parametrize("layer_cls", [L.LSTM, L.GRU])
@pytest.mark.parametrize("mask", [None, [[1] * 6, [1] * 4 + [0] * 2], [[1] * 6, [0] * 6]],
                         ids=["no_mask", "right_padded", "fully_masked_row"])
def test_cudnn_kernel_equals_the_scan_engine(layer_cls, mask, rng):
    layer = layer_cls(4, return_sequences=True, return_state=True, zero_output_for_mask=True)
    inputs = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = None if mask is None else np.array(mask, bool)
    with L.scan_mode("tensorarray"):
        reference = layer(inputs, mask=mask)
    with L.record_plans() as plans:
        fused = layer(inputs, mask=mask)
    assert plans[0][1].loop == "cudnn"
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
