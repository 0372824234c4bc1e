"""The TFLite forms (the "tflite" and "tflite_int8" trace targets) equal the TensorFlow loop."""

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.scan import tflite
from tests.layers.scan.forms import second_row_half_masked, traced

L = kzoo.layers


@pytest.mark.parametrize("layer_cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("time,masked,go_backwards", [
    (1, False, False), (8, True, False), (9, False, True), (130, True, True), (300, True, False)])
def test_tflite_form_equals_tensorarray_form(layer_cls, time, masked, go_backwards, rng):
    layer = layer_cls(3, return_sequences=True, return_state=True, go_backwards=go_backwards)
    inputs = rng.normal(size=(2, time, 4)).astype("float32")
    mask = second_row_half_masked(time) if masked else None
    graph_outputs, graph_grads = traced(layer, inputs, mask, lambda: L.scan_mode("tensorarray"))
    lite_outputs, lite_grads = traced(layer, inputs, mask, lambda: L.trace_target("tflite"))
    for a, b in zip(graph_outputs, lite_outputs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(graph_grads, lite_grads):
        # Sums over up to 300 steps in another order (the weights are not seeded): float32
        # rounding scales with the largest entry (entries near 50 differed by 4e-5 once).
        b = np.asarray(b)
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5,
                                   atol=1e-6 * max(10.0, np.abs(b).max()))


@pytest.mark.parametrize("time,masked,go_backwards", [(9, False, False), (130, True, True)])
def test_tflite_int8_form_equals_tensorarray_form(time, masked, go_backwards, rng):
    """The blocked form kzoo.export traces int8 files with (the "tflite_int8" target)."""
    layer = L.LSTM(3, return_sequences=True, return_state=True, go_backwards=go_backwards)
    inputs = rng.normal(size=(2, time, 4)).astype("float32")
    mask = second_row_half_masked(time) if masked else None
    graph_outputs, _ = traced(layer, inputs, mask, lambda: L.scan_mode("tensorarray"))
    with L.record_plans() as plans:
        lite_outputs, _ = traced(layer, inputs, mask, lambda: L.trace_target("tflite_int8"))
    assert {plan.loop for _, plan in plans} == {"tflite_int8"}
    assert L.get_trace_target() == "keras"      # only inside the block
    for a, b in zip(graph_outputs, lite_outputs):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("time,masked", [(9, False), (130, True)])
def test_tflite_form_gives_wide_outputs_one_small_register_level(time, masked, monkeypatch, rng):
    """Where TFLITE_CHUNKS' registers would exceed TFLITE_REGISTER_BYTES per batch row (a
    ConvLSTM frame), the outputs go through one level of fewer rows, equal all the same."""
    monkeypatch.setattr(tflite, "TFLITE_REGISTER_BYTES", 48)     # 4 rows of 3 floats
    chosen, real = [], tflite.register_chunks
    monkeypatch.setattr(tflite, "register_chunks",
                        lambda zero_output: chosen.append(real(zero_output)) or chosen[-1])
    layer = L.LSTM(3, return_sequences=True, return_state=True)
    inputs = rng.normal(size=(2, time, 4)).astype("float32")
    mask = second_row_half_masked(time) if masked else None
    graph_outputs, _ = traced(layer, inputs, mask, lambda: L.scan_mode("tensorarray"))
    lite_outputs, _ = traced(layer, inputs, mask, lambda: L.trace_target("tflite"))
    assert chosen == [(4,)]
    for a, b in zip(graph_outputs, lite_outputs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_convlstm_frames_get_registers_of_a_few_megabytes():
    """A 64x64x32 ConvLSTM frame (512 KB a row): 8 rows, not 16 + 256 + 256 (256 MB)."""
    assert tflite.register_chunks(tf.zeros([1, 64 * 64 * 32])) == (8,)
    assert tflite.register_chunks(tf.zeros([1, 64])) == tflite.TFLITE_CHUNKS
