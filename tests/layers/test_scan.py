"""The scan engine's two loop forms give equal outputs, states and gradients."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.scan import get_scan_mode

L = kzoo.layers


def run(layer, inputs, mask, mode):
    @tf.function
    def forward_backward(inputs):
        with L.scan_mode(mode):
            with tf.GradientTape() as tape:
                result = layer(inputs, mask=mask)
                loss = tf.reduce_sum(tf.square(result[0]))
        return result, tape.gradient(loss, layer.trainable_weights)

    result, grads = forward_backward(tf.constant(inputs))
    return [np.asarray(r) for r in result], grads


def second_row_half_masked(time):
    """A (2, time) mask whose second row is right-padded after time // 2 + 1 steps."""
    mask = np.ones((2, time), bool)
    mask[1, time // 2 + 1:] = False
    return mask


@pytest.mark.parametrize("layer_cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("time,masked,go_backwards", [
    (1, False, False), (8, True, False), (9, False, True), (130, True, True), (300, True, False)])
def test_tflite_form_equals_tensorarray_form(layer_cls, time, masked, go_backwards, rng):
    layer = layer_cls(3, return_sequences=True, return_state=True, go_backwards=go_backwards)
    inputs = rng.normal(size=(2, time, 4)).astype("float32")
    mask = second_row_half_masked(time) if masked else None
    graph_outputs, graph_grads = run(layer, inputs, mask, "tensorarray")
    lite_outputs, lite_grads = run(layer, inputs, mask, "tflite")
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
def test_tflite_blocked_form_equals_tensorarray_form(time, masked, go_backwards, monkeypatch,
                                                     rng):
    """The blocked form kzoo.export traces int8 files with (tflite_calibration_safe)."""
    scan_module = __import__("kzoo.layers.scan", fromlist=["scan"])
    calls, blocked = [], scan_module._scan_blocks
    monkeypatch.setattr(scan_module, "_scan_blocks",
                        lambda *args, **kwargs: calls.append(1) or blocked(*args, **kwargs))
    layer = L.LSTM(3, return_sequences=True, return_state=True, go_backwards=go_backwards)
    inputs = rng.normal(size=(2, time, 4)).astype("float32")
    mask = second_row_half_masked(time) if masked else None
    graph_outputs, _ = run(layer, inputs, mask, "tensorarray")
    with scan_module.tflite_calibration_safe():
        lite_outputs, _ = run(layer, inputs, mask, "tflite")
    assert calls
    assert not scan_module._calibration_safe()      # only inside the block
    for a, b in zip(graph_outputs, lite_outputs):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_scan_mode_rejects_unknown_mode_and_restores():
    with pytest.raises(ValueError, match="scan_mode must be one of"):
        with L.scan_mode("unrolled"):
            pass
    with L.scan_mode("tflite"):
        assert get_scan_mode() == "tflite"
    assert get_scan_mode() == "auto"


def test_tensorarray_form_builds_no_quadratic_buffer():
    """The default form collects outputs in a TensorArray, never a loop-carried buffer."""
    layer = L.LSTM(3, return_sequences=True)
    fn = tf.function(lambda x: layer(x)).get_concrete_function(
        tf.TensorSpec([None, None, 2], tf.float32))
    ops = {op.type for f in [fn.graph] + [g.graph for g in fn.graph._functions.values()]
           for op in f.get_operations()}
    ops |= {node.op for f in fn.graph.as_graph_def().library.function for node in f.node_def}
    assert "TensorListSetItem" in ops or "TensorArrayWriteV3" in ops
    assert "TensorScatterUpdate" not in ops


@pytest.mark.parametrize("layer_cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("masked,go_backwards,zero_output", [
    (False, False, False), (True, False, False), (True, True, True)])
def test_xla_form_equals_tensorarray_form(layer_cls, masked, go_backwards, zero_output, rng):
    """scan_mode("xla") (inference of the standard cells as one XLA computation) computes the
    same outputs and states; under a tape it leaves training to the tensorarray form."""
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
        assert get_scan_mode() == "xla"
        compiled = tf.function(lambda x: layer(x, initial_state=initial, mask=mask))
        outputs = compiled(tf.constant(inputs))
        graph = compiled.get_concrete_function(tf.constant(inputs)).graph
    assert any(f.definition.attr["_XlaMustCompile"].b for f in graph._functions.values()
               if hasattr(f, "definition"))
    for a, b in zip(reference, outputs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


@pytest.mark.parametrize("layer_cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("masked,go_backwards,training,mode", [
    (False, False, False, "auto"), (True, True, False, "auto"), (True, True, False, "tensorarray"),
    (True, False, True, "auto"), (False, True, True, "auto")])
def test_row_groups_equal_one_loop(layer_cls, masked, go_backwards, training, mode, rng,
                                   monkeypatch):
    """A batch split into row groups (one XLA loop per core: training, and inference that
    "auto" compiles) gives the outputs, states and gradients of one loop over the whole batch,
    also for uneven groups and masked rows; the TensorFlow inference loop runs one loop."""
    scan_module = __import__("kzoo.layers.scan", fromlist=["scan"])
    batch = 11
    layer = layer_cls(4, return_sequences=True, return_state=True, go_backwards=go_backwards)
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
            result = layer(inputs, initial_state=initial, mask=mask, training=training)
            loss = tf.reduce_sum(tf.square(result[0]))
        return result, tape.gradient(loss, layer.trainable_weights)

    def traced():
        with L.scan_mode(mode):
            return tf.function(forward_backward if training else lambda: (layer(
                inputs, initial_state=initial, mask=mask), []))()

    group_sizes = []
    real_group_sizes = scan_module._group_sizes
    monkeypatch.setattr(scan_module, "_group_sizes",
                        lambda *a: group_sizes.append(real_group_sizes(*a)) or group_sizes[-1])
    monkeypatch.setattr(scan_module, "available_cores", lambda: 1)
    one_outputs, one_grads = traced()
    assert not group_sizes
    monkeypatch.setattr(scan_module, "available_cores", lambda: 3)
    monkeypatch.setattr(scan_module, "MIN_GROUP_ROWS", 3)
    outputs, grads = traced()
    assert group_sizes == ([[4, 4, 3]] if training or mode == "auto" else [])
    for a, b in zip(one_outputs, outputs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    for a, b in zip(one_grads, grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_loops_project_each_step_and_keep_no_projected_sequence(training):
    """The TensorFlow loops project x_t themselves, so the graph outside them has no
    (T, B, k·units) tensor; a cell TensorFlow differentiates (peephole LSTM) projects all steps
    in one matmul."""
    x = tf.zeros((4, 5, 3))

    def outer_matmul_widths(layer):
        layer(x)

        def call():
            if not training:
                with L.scan_mode("tensorarray"):      # "auto" compiles such a small step
                    return layer(x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            return tape.gradient(y, [x] + layer.trainable_weights)

        graph = tf.function(call).get_concrete_function().graph
        return [op.outputs[0].shape[-1] for op in graph.get_operations()
                if op.type in ("MatMul", "_MklMatMul", "BatchMatMulV2")]

    assert 32 not in outer_matmul_widths(L.LSTM(8))
    assert (32 in outer_matmul_widths(L.LSTM(8, peephole=True))) == training


def test_auto_compiles_inference_of_small_fixed_steps_only(rng):
    """"auto" inference runs XLA for a fixed-shape graph with a small step and the TensorFlow
    loop for a large step or a dynamic shape; both equal eager outputs."""
    scan_module = __import__("kzoo.layers.scan", fromlist=["scan"])

    def compiled(layer, spec, x):
        fn = tf.function(lambda x: layer(x))
        graph = fn.get_concrete_function(spec).graph
        np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(layer(x)), atol=1e-6)
        return any(f.definition.attr["_XlaMustCompile"].b for f in graph._functions.values()
                   if hasattr(f, "definition"))

    layer = L.GRU(8)
    x = tf.constant(rng.normal(size=(2, 6, 3)).astype("float32"))
    rows = scan_module.XLA_INFERENCE_MAX_STEP // 8 + 1
    wide = tf.constant(rng.normal(size=(rows, 6, 3)).astype("float32"))
    assert compiled(layer, tf.TensorSpec(x.shape), x)
    assert not compiled(layer, tf.TensorSpec([None, None, 3]), x)
    assert not compiled(layer, tf.TensorSpec(wide.shape), wide)


@pytest.mark.parametrize("cores,expected", [(2, []), (4, [[3, 3]] * 2)])
def test_bidirectional_directions_share_the_cores(cores, expected, rng, monkeypatch):
    """A Bidirectional's two directions run side by side: their row groups split the cores
    between them (one loop per direction on 2 cores), and the result is unchanged."""
    scan_module = __import__("kzoo.layers.scan", fromlist=["scan"])
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True))
    inputs = tf.constant(rng.normal(size=(6, 5, 3)).astype("float32"))
    reference = layer(inputs)
    group_sizes = []
    real_group_sizes = scan_module._group_sizes
    monkeypatch.setattr(scan_module, "_group_sizes",
                        lambda *a: group_sizes.append(real_group_sizes(*a)) or group_sizes[-1])
    monkeypatch.setattr(scan_module, "available_cores", lambda: cores)
    monkeypatch.setattr(scan_module, "MIN_GROUP_ROWS", 3)
    outputs = tf.function(lambda: layer(inputs))()
    assert group_sizes == expected
    assert getattr(scan_module._local, "concurrent", 1) == 1     # restored after the call
    np.testing.assert_allclose(np.asarray(outputs), np.asarray(reference), atol=1e-6)


@pytest.mark.parametrize("time,masked", [(9, False), (130, True)])
def test_tflite_form_gives_wide_outputs_one_small_register_level(time, masked, monkeypatch, rng):
    """Where TFLITE_CHUNKS' registers would exceed TFLITE_REGISTER_BYTES per batch row (a
    ConvLSTM frame), the outputs go through one level of fewer rows, equal all the same."""
    scan_module = __import__("kzoo.layers.scan", fromlist=["scan"])
    monkeypatch.setattr(scan_module, "TFLITE_REGISTER_BYTES", 48)     # 4 rows of 3 floats
    chosen, real = [], scan_module._register_chunks
    monkeypatch.setattr(scan_module, "_register_chunks",
                        lambda zero_output: chosen.append(real(zero_output)) or chosen[-1])
    layer = L.LSTM(3, return_sequences=True, return_state=True)
    inputs = rng.normal(size=(2, time, 4)).astype("float32")
    mask = second_row_half_masked(time) if masked else None
    graph_outputs, _ = run(layer, inputs, mask, "tensorarray")
    lite_outputs, _ = run(layer, inputs, mask, "tflite")
    assert chosen == [(4,)]
    for a, b in zip(graph_outputs, lite_outputs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_convlstm_frames_get_registers_of_a_few_megabytes():
    """A 64x64x32 ConvLSTM frame (512 KB a row): 8 rows, not 16 + 256 + 256 (256 MB)."""
    scan_module = __import__("kzoo.layers.scan", fromlist=["scan"])
    assert scan_module._register_chunks(tf.zeros([1, 64 * 64 * 32])) == (8,)
    assert scan_module._register_chunks(tf.zeros([1, 64])) == scan_module.TFLITE_CHUNKS


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
