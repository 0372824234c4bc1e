"""XLA inference (scan/xla.py) equals the TensorFlow loop, and is cached by what it closes over."""

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.gru import GRUStepGradient
from kzoo.layers.scan import xla
from tests.layers.scan.forms import xla_compiled

L = kzoo.layers


@pytest.mark.parametrize("layer_cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("masked,go_backwards,zero_output", [
    (False, False, False), (True, False, False), (True, True, True)])
def test_xla_form_equals_tensorarray_form(layer_cls, masked, go_backwards, zero_output, rng):
    """scan_mode("xla") (inference of the standard cells as one XLA computation) computes the
    same outputs and states."""
    layer = layer_cls(5, return_sequences=True, return_state=True, go_backwards=go_backwards,
                      zero_output_for_mask=zero_output)
    inputs = rng.normal(size=(3, 9, 4)).astype("float32")
    mask = None
    if masked:
        mask = np.ones((3, 9), bool)
        mask[1, 5:] = False
        mask[2, :] = False          # a fully masked row: zero output, initial state
    initial = [rng.normal(size=(3, 5)).astype("float32") for _ in layer.cell.state_size]
    reference = layer(inputs, initial_state=initial, mask=mask)
    with L.scan_mode("xla"):
        assert L.get_scan_mode() == "xla"
        compiled = tf.function(lambda x: layer(x, initial_state=initial, mask=mask))
        outputs = compiled(tf.constant(inputs))
        graph = compiled.get_concrete_function(tf.constant(inputs)).graph
    assert xla_compiled(graph)
    for a, b in zip(reference, outputs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_compiled_functions_are_keyed_by_the_step_gradient_config(rng):
    """A GRU with and one without bias share the step gradient's type but not its equations
    (the recurrent bias): each gets a compiled function of its own, and both compute their own
    layer's outputs (before, the first one's function served the type)."""
    x = tf.constant(rng.normal(size=(2, 4, 3)).astype("float32"))
    layers = [L.GRU(4, use_bias=False), L.GRU(4)]
    for layer in layers:
        layer(x)
        layer.cell.bias is None or layer.cell.bias.assign(
            rng.normal(size=layer.cell.bias.shape).astype("float32"))
    with L.scan_mode("xla"):
        outputs = [layer(x) for layer in layers]
    for layer, output in zip(layers, outputs):
        np.testing.assert_allclose(np.asarray(output), np.asarray(layer(x)), atol=1e-6)
    gradients = {key[0] for key in xla._FORWARDS}
    assert {GRUStepGradient(recurrent_bias=False), GRUStepGradient(recurrent_bias=True)} \
        <= gradients
