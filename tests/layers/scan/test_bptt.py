"""The engine's own backpropagation through time equals TensorFlow's gradient of the same loop."""

import contextlib
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.gru import GRUStepGradient
from kzoo.layers.lstm import LSTMStepGradient
from kzoo.layers.scan.bptt import BPTT_WEIGHT_BLOCK as BLOCK
from kzoo.layers.simple_rnn import SimpleRNNStepGradient

L = kzoo.layers

CELLS = {
    "simple_rnn": lambda **kw: L.SimpleRNN(5, **kw),
    "lstm": lambda **kw: L.LSTM(5, **kw),
    "gru": lambda **kw: L.GRU(5, **kw),
    "gru_no_bias": lambda **kw: L.GRU(5, use_bias=False, **kw),
}


def masks(kind, batch, time):
    if kind is None:
        return None
    mask = np.ones((batch, time), bool)
    if kind == "right":
        mask[1, time // 2:] = False
        mask[2, 1:] = False
    elif kind == "left":
        mask[1, :time // 2] = False
    elif kind == "empty_row":          # a fully masked row returns its initial state
        mask[2, :] = False
    return mask


def gradients(layer, inputs, initial, mask, use_bptt, compiled, mode="auto", watch_inputs=True):
    """Outputs and the gradients of a loss over every output w.r.t. inputs (unless not
    ``watch_inputs``: then no tape needs them), states, weights."""
    def forward_backward(inputs, initial):
        with tf.GradientTape() as tape:
            tape.watch([inputs, *initial] if watch_inputs else initial)
            result = layer(inputs, initial_state=initial, mask=mask)
            loss = sum(tf.reduce_sum(tf.sin(r) * (i + 1.0)) for i, r in enumerate(result))
        grads = tape.gradient(loss, [inputs] * watch_inputs + [*initial,
                                                               *layer.trainable_weights])
        return result, grads

    fn = forward_backward
    if compiled:
        # compiled="unknown shapes": batch and time stay unknown in the traced graph.
        signature = None if compiled != "unknown shapes" else [
            tf.TensorSpec((None, None, *inputs.shape[2:])),
            [tf.TensorSpec((None, *s.shape[1:])) for s in initial]]
        fn = tf.function(forward_backward, input_signature=signature)
    # Without an engine step the engine falls back to TensorFlow's gradient of the loop.
    patch = contextlib.nullcontext() if use_bptt else mock.patch.object(
        type(layer.cell), "engine_step", lambda self, recurrent_mask=None: None)
    with patch, L.scan_mode(mode):
        result, grads = fn(tf.constant(inputs), [tf.constant(s) for s in initial])
    return [np.asarray(r) for r in result], [np.asarray(g) for g in grads]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mask_kind,go_backwards,return_sequences,zero_output,compiled", [
    (None, False, True, False, True),
    (None, True, False, False, True),
    ("right", False, True, False, True),
    ("right", True, True, True, True),
    ("left", False, True, True, True),
    ("empty_row", False, False, False, True),
    ("right", False, True, False, False),     # eagerly
])
def test_engine_gradient_equals_tensorflow_gradient(cell, mask_kind, go_backwards,
                                                    return_sequences, zero_output, compiled, rng):
    layer = CELLS[cell](return_sequences=return_sequences, return_state=True,
                        go_backwards=go_backwards, zero_output_for_mask=zero_output)
    batch, time = 3, 7
    inputs = rng.normal(size=(batch, time, 4)).astype("float32")
    layer.build((batch, time, 4))
    initial = [rng.normal(size=(batch, 5)).astype("float32")
               for _ in layer.cell.state_size]
    mask = masks(mask_kind, batch, time)
    assert layer.cell.engine_step() is not None
    ours_out, ours_grads = gradients(layer, inputs, initial, mask, True, compiled,
                                     mode="tensorarray")
    tf_out, tf_grads = gradients(layer, inputs, initial, mask, False, compiled)
    for a, b in zip(ours_out, tf_out):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(ours_grads) == len(tf_grads) == 1 + len(initial) + len(layer.trainable_weights)
    for a, b in zip(ours_grads, tf_grads):
        assert np.abs(b).max() > 0
        # Weight gradients are sums over steps and rows in another order: float32 rounding
        # scales with the largest entry.
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mask_kind,go_backwards,compiled,time,watch_inputs", [
    (None, False, True, 6, True), ("right", True, True, 6, True),
    ("empty_row", False, False, 6, True),
    # Inputs no tape watches get no gradient (and the loops compute none).
    ("left", True, True, 40, False),
    # The weights' gradients are summed a block of steps at a time: exactly one block, and a
    # remainder block before full ones.
    ("right", False, True, BLOCK, True), (None, True, True, 2 * BLOCK + 3, True)])
def test_xla_mode_gradient_equals_tensorflow_gradient(cell, mask_kind, go_backwards, compiled,
                                                      time, watch_inputs, rng):
    """Under scan_mode("xla"), and by default in a graph with fixed shapes, training runs the
    same derivations with each loop one XLA computation."""
    layer = CELLS[cell](return_sequences=True, return_state=True, go_backwards=go_backwards)
    inputs = rng.normal(size=(3, time, 4)).astype("float32")
    layer.build((3, time, 4))
    initial = [rng.normal(size=(3, 5)).astype("float32") for _ in layer.cell.state_size]
    mask = masks(mask_kind, 3, time)
    # "auto" is XLA when compiled with fixed shapes; "xla" always.
    xla_out, xla_grads = gradients(layer, inputs, initial, mask, True, compiled,
                                   mode="auto" if compiled else "xla", watch_inputs=watch_inputs)
    tf_out, tf_grads = gradients(layer, inputs, initial, mask, False, compiled,
                                 watch_inputs=watch_inputs)
    assert len(xla_grads) == watch_inputs + len(initial) + len(layer.trainable_weights)
    for a, b in zip(xla_out, tf_out):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(xla_grads, tf_grads):
        # XLA fuses and reorders float32 arithmetic: equal to roundoff of the largest entries.
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("layer,expected", [
    (L.LSTM(3), LSTMStepGradient()),
    (L.LSTM(3, peephole=True), None),
    (L.LSTM(3, layer_norm=True), None),
    (L.LSTM(3, proj_units=2), None),
    (L.LSTM(3, use_forget_gate=False), None),
    (L.LSTM(3, activation="relu"), None),
    (L.GRU(3), GRUStepGradient(recurrent_bias=True)),
    (L.GRU(3, use_bias=False), GRUStepGradient(recurrent_bias=False)),
    (L.GRU(3, reset_after=False), None),
    (L.GRU(3, recurrent_activation="hard_sigmoid"), None),
    (L.SimpleRNN(3), SimpleRNNStepGradient()),
    (L.SimpleRNN(3, activation="relu"), None),
    (L.Jordan(3, 2), None),
    (L.ConvLSTM2D(2, 2), None),
])
def test_which_configurations_have_an_engine_step(layer, expected):
    layer.build((2, 4, 3, 3, 1) if isinstance(layer, L.ConvLSTM2D) else (2, 4, 2))
    engine_step = layer.cell.engine_step()
    assert (engine_step is None) if expected is None else engine_step.gradient == expected
    # Recurrent dropout masks h inside the step: TensorFlow differentiates that configuration.
    assert layer.cell.engine_step(recurrent_mask=tf.ones((2, 3))) is None


def test_without_a_tape_the_graph_keeps_nothing_for_a_backward_pass():
    """Inference and serving graphs hold the plain loop: no custom gradient, nothing saved."""
    layer = L.LSTM(4, return_sequences=True)
    spec = tf.TensorSpec([None, None, 3], tf.float32)
    plain = tf.function(lambda x: layer(x)).get_concrete_function(spec)

    def with_tape(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, x)
    training = tf.function(with_tape).get_concrete_function(spec)

    def op_attrs(fn):
        graphs = [fn.graph] + [f.graph for f in fn.graph._functions.values()
                               if hasattr(f, "graph")]
        return {op.get_attr("_gradient_op_type") for g in graphs for op in g.get_operations()
                if "_gradient_op_type" in op.node_def.attr}
    assert not op_attrs(plain)
    assert op_attrs(training)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch,time", [(5, 2 * BLOCK + 3), (2, 3)])
def test_xla_mode_trains_a_graph_of_unknown_batch_and_time(cell, batch, time, rng):
    """scan_mode("xla") compiles each call's concrete shapes while the traced graph leaves batch
    and time unknown: the backward loop sizes its weight-gradient buffers from the running batch."""
    layer = CELLS[cell](return_sequences=True, return_state=True)
    inputs = rng.normal(size=(batch, time, 4)).astype("float32")
    layer.build((None, None, 4))
    initial = [rng.normal(size=(batch, 5)).astype("float32") for _ in layer.cell.state_size]
    _, xla_grads = gradients(layer, inputs, initial, None, True, "unknown shapes", mode="xla")
    _, tf_grads = gradients(layer, inputs, initial, None, False, "unknown shapes")
    for a, b in zip(xla_grads, tf_grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_a_training_step_on_one_feature_with_an_unknown_batch(cell, rng):
    """One input feature makes the kernel's gradient (1, k·units). Summed in the TensorFlow
    backward loop of a graph whose inputs' batch is unknown but whose states' is not (a stateful
    model fed by tf.data) and applied to the weights, it was taken by TensorFlow's graph
    optimizer (with oneDNN) for a bias add, whose kernel then refused the (1, k·units) "bias"
    ("bias must be 1-dimensional"). The engine's step equals the one with TensorFlow's
    gradient."""
    layer = CELLS[cell](return_sequences=True)
    inputs = rng.normal(size=(4, 6, 1)).astype("float32")
    layer.build((None, None, 1))
    start = [w.numpy() for w in layer.trainable_weights]
    initial = [rng.normal(size=(4, 5)).astype("float32") for _ in layer.cell.state_size]

    def sgd_step(inputs, initial):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(layer(inputs, initial_state=initial)))
        for weight, grad in zip(layer.trainable_weights,
                                tape.gradient(loss, layer.trainable_weights)):
            weight.assign_sub(0.1 * grad)

    def trained(use_bptt):
        for weight, value in zip(layer.trainable_weights, start):
            weight.assign(value)
        step = tf.function(sgd_step, input_signature=[
            tf.TensorSpec((None, *inputs.shape[1:])), [tf.TensorSpec(s.shape) for s in initial]])
        patch = contextlib.nullcontext() if use_bptt else mock.patch.object(
            type(layer.cell), "engine_step", lambda self, recurrent_mask=None: None)
        with patch:
            step(tf.constant(inputs), [tf.constant(s) for s in initial])
        return [w.numpy() for w in layer.trainable_weights]

    for a, b in zip(trained(True), trained(False)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
