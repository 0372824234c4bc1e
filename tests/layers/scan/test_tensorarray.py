"""The TensorFlow loop (scan/tensorarray.py): linear in T, and projecting each step itself."""

import pytest
import tensorflow as tf

import kzoo

L = kzoo.layers


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
