"""The TFLite form of files quantized to int8: blocks of steps unrolled, buffers written by scatter.

TensorFlow's int8 calibrator crashes (a segfault in its MinMax logging) running the loops of
:mod:`kzoo.layers.scan.tflite`; it runs these, whose loop bodies are resized on every iteration
(which LiteRT runs more slowly: ``python benchmarks/tflite_speed.py``). The plan picks it for the
``"tflite_int8"`` trace target.
"""

import tensorflow as tf

from kzoo.layers.scan.masking import batch_major


def _blocks(x, n_blocks, unroll):
    """The first ``n_blocks * unroll`` steps of time-major ``x`` as (n_blocks, unroll, ...)."""
    return tf.reshape(x[:n_blocks * unroll], tf.concat([[n_blocks, unroll], tf.shape(x)[1:]], 0))


def scan_tflite_int8(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect):
    """The blocked TFLite form (see the module docstring); arguments and result as
    :func:`kzoo.layers.scan.tflite.scan_tflite`.

    Full blocks of 8 steps run unrolled; with ``collect`` a block's outputs are
    stacked and written into a chunk buffer, and each chunk of 16 blocks into the
    output buffer. The last ``T mod 8`` steps run one per iteration into a small
    tail buffer. Nothing is padded or masked beyond the caller's own mask.
    """
    unroll, chunk = 8, 16      # steps per iteration, blocks per chunk
    time_steps = tf.shape(inputs_tm)[0]
    n_blocks = time_steps // unroll
    n_states = len(initial_states)
    x_blocks = _blocks(inputs_tm, n_blocks, unroll)
    m_blocks = None if mask_tm is None else _blocks(mask_tm, n_blocks, unroll)
    out_shape = tf.shape(zero_output)
    dtype = zero_output.dtype

    def run_block(b, prev_output, states):
        x_block = tf.gather(x_blocks, b)
        m_block = None if m_blocks is None else tf.gather(m_blocks, b)
        emitted_steps = []
        for u in range(unroll):
            emitted, prev_output, states = masked_step(
                x_block[u], None if m_block is None else m_block[u], prev_output, states)
            emitted_steps.append(emitted)
        return emitted_steps, prev_output, states

    if not collect:
        def block_body(b, prev_output, *states):
            _, prev_output, states = run_block(b, prev_output, list(states))
            return (b + 1, prev_output, *states)

        result = tf.while_loop(lambda b, *_: b < n_blocks, block_body,
                               (tf.constant(0), zero_output, *initial_states))
        main_outputs = None
    else:
        n_chunks = (n_blocks + chunk - 1) // chunk

        def chunk_body(c, prev_output, buffer, *states):
            def block_body(j, prev_output, chunk_buffer, *states):
                emitted_steps, prev_output, states = run_block(c * chunk + j, prev_output,
                                                               list(states))
                chunk_buffer = tf.tensor_scatter_nd_update(
                    chunk_buffer, [[j]], tf.expand_dims(tf.stack(emitted_steps), 0))
                return (j + 1, prev_output, chunk_buffer, *states)

            blocks_here = tf.minimum(chunk, n_blocks - c * chunk)
            chunk_buffer = tf.zeros(tf.concat([[chunk, unroll], out_shape], 0), dtype)
            inner = tf.while_loop(lambda j, *_: j < blocks_here, block_body,
                                  (tf.constant(0), prev_output, chunk_buffer, *states))
            buffer = tf.tensor_scatter_nd_update(buffer, [[c]], tf.expand_dims(inner[2], 0))
            return (c + 1, inner[1], buffer, *inner[3:])

        # At least one chunk, so that shape inference never sees an empty buffer being written.
        buffer = tf.zeros(tf.concat([[tf.maximum(n_chunks, 1), chunk, unroll], out_shape], 0),
                          dtype)
        result = tf.while_loop(lambda c, *_: c < n_chunks, chunk_body,
                               (tf.constant(0), zero_output, buffer, *initial_states))
        main_outputs = tf.reshape(result[2], tf.concat([[-1], out_shape], 0))
        main_outputs = main_outputs[:n_blocks * unroll]
        result = (result[0], result[1], *result[3:])

    # The tail: fewer than `unroll` steps, one per iteration.
    def tail_body(t, prev_output, tail_buffer, *states):
        m_t = None if mask_tm is None else tf.gather(mask_tm, t)
        emitted, prev_output, states = masked_step(tf.gather(inputs_tm, t), m_t, prev_output,
                                                   list(states))
        if collect:
            tail_buffer = tf.tensor_scatter_nd_update(
                tail_buffer, [[t - n_blocks * unroll]], tf.expand_dims(emitted, 0))
        return (t + 1, prev_output, tail_buffer, *states)

    tail_buffer = tf.zeros(tf.concat([[unroll if collect else 1], out_shape], 0), dtype)
    tail = tf.while_loop(lambda t, *_: t < time_steps, tail_body,
                         (n_blocks * unroll, result[1], tail_buffer, *result[2:2 + n_states]))
    last_output = tail[1]
    final_states = list(tail[3:3 + n_states])
    outputs = None
    if collect:
        tail_outputs = tail[2][:time_steps - n_blocks * unroll]
        outputs = batch_major(tf.concat([main_outputs, tail_outputs], 0))
    return last_output, outputs, final_states
