"""The cuDNN dispatch decision, tested on the CPU (the kernel itself needs a GPU)."""

from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers import cudnn

L = kzoo.layers


def built(layer):
    layer.build((2, 5, 3))
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
    (L.SimpleRNN(4), "has no cuDNN kernel"),
    (L.LSTM(4, dtype="float64"), "dtype"),
])
def test_which_configurations_go_to_cudnn(layer, reason):
    refusal = cudnn.cudnn_refusal(built(layer), mode="auto", gpu=True)
    assert refusal is None if reason is None else reason in refusal


def test_no_gpu_non_default_modes_and_recurrent_dropout_stay_portable():
    cell = built(L.LSTM(4))
    assert "no GPU" in cudnn.cudnn_refusal(cell, mode="auto", gpu=False)
    for mode in ("tensorarray", "xla", "tflite"):     # exports trace in these modes
        assert "scan mode" in cudnn.cudnn_refusal(cell, mode=mode, gpu=True)
    assert "recurrent dropout" in cudnn.cudnn_refusal(
        cell, mode="auto", recurrent_mask=tf.ones((2, 4)), gpu=True)
    assert cudnn.cudnn_refusal(cell, mode="auto") == "no GPU"    # this machine


@pytest.mark.parametrize("mask,fits", [
    ([[1, 1, 1], [1, 1, 0]], True),
    ([[1, 1, 1], [0, 1, 1]], False),       # left padding
    ([[1, 1, 1], [0, 0, 0]], False),       # a fully masked row
    ([[1, 0, 1], [1, 1, 1]], False),       # a hole
])
def test_masks_cudnn_can_take(mask, fits):
    assert bool(cudnn._mask_fits_cudnn(tf.constant(np.array(mask, bool)))) is fits


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
    layer = layer_cls(4, return_sequences=True, return_state=True, zero_output_for_mask=True)
    inputs = rng.normal(size=(2, 5, 3)).astype("float32")
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
