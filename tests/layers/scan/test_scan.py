"""scan() runs its plan: row groups, the static time axis, and plans given by hand."""

import contextlib
import importlib

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.scan import LoopPlan, plan as plan_module
from tests.layers.scan.forms import xla_compiled

L = kzoo.layers
engine = importlib.import_module("kzoo.layers.scan")


@pytest.mark.parametrize("layer_fn", [lambda: L.SimpleRNN(4, return_sequences=True,
                                                          return_state=True),
                                      lambda: L.LSTM(4, return_sequences=True, return_state=True),
                                      lambda: L.GRU(4, return_sequences=True, return_state=True),
                                      lambda: L.LSTM(4, peephole=True, return_sequences=True,
                                                     return_state=True)],
                         ids=["simple_rnn", "lstm", "gru", "lstm_peephole"])
@pytest.mark.parametrize("masked,go_backwards,training,mode", [
    (False, False, False, "auto"), (True, True, False, "auto"), (True, True, False, "tensorarray"),
    (True, False, True, "auto"), (False, True, True, "auto"), (True, False, True, "tensorarray")])
def test_row_groups_equal_one_loop(layer_fn, masked, go_backwards, training, mode, rng,
                                   monkeypatch):
    """A batch split into row groups (one XLA loop per core: the engine's XLA inference and its
    compiled backpropagation) gives the outputs, states and gradients of one loop over the whole
    batch, also for uneven groups and masked rows; TensorFlow's loops (its inference loop, its
    gradient of a cell without an engine step, the engine's uncompiled backward loop) run one
    loop over the batch (before, every loop under a tape was split)."""
    batch = 11
    layer = layer_fn()
    inputs = tf.constant(rng.normal(size=(batch, 7, 3)).astype("float32"))
    mask = None
    if masked:
        mask = np.ones((batch, 7), bool)
        mask[1, 4:] = False
        mask[8, :] = False
    initial = [tf.constant(rng.normal(size=(batch, 4)).astype("float32"))
               for _ in layer.cell.state_size]
    layer(inputs, initial_state=initial)

    def forward_backward():
        with tf.GradientTape() as tape:
            result = layer(inputs, initial_state=initial, mask=mask)
            loss = tf.reduce_sum(tf.square(result[0]))
        return result, tape.gradient(loss, layer.trainable_weights)

    def traced():
        with L.scan_mode(mode), L.record_plans() as plans:
            result = tf.function(forward_backward if training else lambda: (layer(
                inputs, initial_state=initial, mask=mask), []))()
        return result, [plan for _, plan in plans]

    group_sizes = []
    real_group_sizes = engine._group_sizes
    monkeypatch.setattr(engine, "_group_sizes",
                        lambda *a: group_sizes.append(real_group_sizes(*a)) or group_sizes[-1])
    monkeypatch.setattr(plan_module, "available_cores", lambda: 1)
    (one_outputs, one_grads), _ = traced()
    assert not group_sizes
    monkeypatch.setattr(plan_module, "available_cores", lambda: 3)
    monkeypatch.setattr(plan_module, "MIN_GROUP_ROWS", 3)
    (outputs, grads), plans = traced()
    split = {plan.loop for plan in plans if plan.jit}
    assert group_sizes == ([[4, 4, 3]] if split else [])
    engine_step = layer.cell.engine_step() is not None
    assert split == ({"bptt"} if training and engine_step and mode == "auto"
                     else {"xla"} if not training and engine_step and mode == "auto"
                     else set())
    for a, b in zip(one_outputs, outputs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    for a, b in zip(one_grads, grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cores,expected", [(2, []), (4, [[3, 3]] * 2)])
def test_bidirectional_directions_share_the_cores(cores, expected, rng, monkeypatch):
    """A Bidirectional's two directions run side by side: their row groups split the cores
    between them (one loop per direction on 2 cores), and the result is unchanged."""
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True))
    inputs = tf.constant(rng.normal(size=(6, 5, 3)).astype("float32"))
    reference = layer(inputs)
    group_sizes = []
    real_group_sizes = engine._group_sizes
    monkeypatch.setattr(engine, "_group_sizes",
                        lambda *a: group_sizes.append(real_group_sizes(*a)) or group_sizes[-1])
    monkeypatch.setattr(plan_module, "available_cores", lambda: cores)
    monkeypatch.setattr(plan_module, "MIN_GROUP_ROWS", 3)
    outputs = tf.function(lambda: layer(inputs))()
    assert group_sizes == expected
    assert getattr(plan_module._local, "concurrent", 1) == 1     # restored after the call
    np.testing.assert_allclose(np.asarray(outputs), np.asarray(reference), atol=1e-6)


@pytest.mark.parametrize("mode", ["auto", "tensorarray", "xla"])
@pytest.mark.parametrize("taped", [False, True])
def test_output_sequence_keeps_the_static_time_axis(mode, taped):
    """A loop's stacked outputs have a computed length; the engine restores the input's static
    time axis, so that a second layer of a fixed-shape graph sees fixed shapes (and "auto"
    compiles its loops with XLA: before, a deep model's second layer ran TensorFlow's)."""
    first, second = L.LSTM(4, return_sequences=True), L.GRU(3, return_sequences=True)
    shapes = []

    @tf.function(input_signature=[tf.TensorSpec((2, 7, 5))])
    def forward(inputs):
        with L.scan_mode(mode), (tf.GradientTape() if taped else contextlib.nullcontext()) as tape:
            if taped:
                tape.watch(inputs)
            hidden = first(inputs)
            outputs = second(hidden)
        shapes[:] = [hidden.shape, outputs.shape]      # the last trace (the first builds)
        return outputs

    assert forward(tf.zeros((2, 7, 5))).shape == (2, 7, 3)
    assert shapes == [(2, 7, 4), (2, 7, 3)]


def test_auto_compiles_inference_of_small_fixed_steps_only(rng):
    """"auto" inference runs XLA for a fixed-shape graph with a small step and the TensorFlow
    loop for a large step or a dynamic shape; both equal eager outputs."""
    def compiled(layer, spec, x):
        fn = tf.function(lambda x: layer(x))
        graph = fn.get_concrete_function(spec).graph
        np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(layer(x)), atol=1e-6)
        return xla_compiled(graph)

    layer = L.GRU(8)
    x = tf.constant(rng.normal(size=(2, 6, 3)).astype("float32"))
    rows = plan_module.XLA_INFERENCE_MAX_STEP // 8 + 1
    wide = tf.constant(rng.normal(size=(rows, 6, 3)).astype("float32"))
    assert compiled(layer, tf.TensorSpec(x.shape), x)
    assert not compiled(layer, tf.TensorSpec([None, None, 3]), x)
    assert not compiled(layer, tf.TensorSpec(wide.shape), wide)


def _running_sum(x_t, states):
    total = states[0] + x_t
    return total, [total]


def test_a_plan_given_by_hand_runs_and_must_fit_the_call():
    """scan(plan=...) runs that plan (the TFLite form here, outside any TFLite trace), and
    refuses one that needs what the call does not give."""
    x = tf.ones((2, 5, 3))
    with L.record_plans() as plans:
        _, outputs, _ = L.scan(_running_sum, x, [tf.zeros((2, 3))],
                               plan=LoopPlan(loop="tflite"))
    assert plans[0][1] == LoopPlan(loop="tflite")
    np.testing.assert_allclose(np.asarray(outputs)[:, :, 0], [[1, 2, 3, 4, 5]] * 2)
    for plan, missing in ((LoopPlan(loop="bptt", step="engine"), "engine_step"),
                          (LoopPlan(loop="cudnn"), "cudnn"),
                          (LoopPlan(loop="tensorarray", projection="all_steps"), "project")):
        with pytest.raises(ValueError, match=f"needs `{missing}`"):
            L.scan(_running_sum, x, [tf.zeros((2, 3))], plan=plan)
