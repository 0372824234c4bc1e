"""The one scan engine every kzoo recurrent layer runs on.

``scan(step, inputs, initial_states)`` folds ``(y_t, s_t) = step(x_t, s_{t-1})`` over the time axis
of ``inputs`` (batch-major, ``(B, T, ...)``), where ``x_t`` is the already projected input of step t
(the layers do the input projection of all steps as one matmul before calling the engine).

The loop is a single ``tf.while_loop`` that carries the states. How the per-step outputs are
collected depends on where the graph is going, chosen with :func:`scan_mode`:

* ``"tensorarray"`` (the default): a ``TensorArray``, linear in T in the TensorFlow runtime.
* ``"tflite"``: no TensorArray/TensorList at all, so the TFLite converter lowers the loop to
  builtin ``WHILE`` ops with dynamic batch and time. A loop-carried output buffer is copied by
  the runtime on every iteration, so the loop runs ``TFLITE_UNROLL`` steps per iteration (their
  outputs stacked, no buffer) and writes whole blocks into a small chunk buffer, which an outer
  loop writes into the full buffer: the full buffer is carried ``T / (unroll * chunk)`` times
  instead of T times. Without ``return_sequences`` there is no buffer at all.

Masked steps (``mask[b, t] == False``) carry the previous state through, and emit the previous
output (or zeros with ``zero_output_for_mask``), exactly as ``keras.layers.RNN`` does; a fully
masked row therefore returns its initial state.
"""

import contextlib
import threading

import tensorflow as tf

SCAN_MODES = ("tensorarray", "tflite")

_local = threading.local()


def get_scan_mode():
    """The output-collection form layers trace with in this thread (see :func:`scan_mode`)."""
    return getattr(_local, "mode", "tensorarray")


@contextlib.contextmanager
def scan_mode(mode):
    """Trace every kzoo recurrent layer called inside the block with the given loop form.

    ``scan_mode("tflite")`` is what ``kzoo.export.tflite`` uses while it traces a model for the
    converter; ``"tensorarray"`` is the default everywhere else.
    """
    if mode not in SCAN_MODES:
        raise ValueError(f"scan_mode must be one of {SCAN_MODES}, got {mode!r}")
    previous = get_scan_mode()
    _local.mode = mode
    try:
        yield
    finally:
        _local.mode = previous


# Steps unrolled per while-loop iteration, and blocks per chunk, in the TFLite form.
TFLITE_UNROLL = 8
TFLITE_CHUNK = 16


def _time_major(x):
    perm = [1, 0] + list(range(2, x.shape.rank))
    return tf.transpose(x, perm)


def _batch_major(x):
    return _time_major(x)


def _expand_mask(mask_t, like):
    """(B,) bool -> broadcastable to ``like`` (B, ...)."""
    return tf.reshape(mask_t, [-1] + [1] * (like.shape.rank - 1))


def _masked_update(mask_t, new, old):
    return tf.where(_expand_mask(mask_t, new), new, old)


def scan(
    step,
    inputs,
    initial_states,
    *,
    mask=None,
    go_backwards=False,
    return_sequences=True,
    zero_output_for_mask=False,
    time_major=False,
    mode=None,
):
    """Run ``step`` over time. Returns ``(last_output, outputs, final_states)``.

    Args:
      step: ``step(x_t, states) -> (y_t, new_states)`` with ``states`` a list of tensors.
        ``y_t`` has the shape and dtype of ``states[0]`` (true of every kzoo cell).
      inputs: ``(B, T, ...)`` projected inputs.
      initial_states: list of ``(B, ...)`` tensors.
      mask: optional ``(B, T)`` boolean.
      go_backwards: process time in reverse; outputs stay in processing order (as Keras).
      return_sequences: if False, ``outputs`` is None and no per-step buffer is built.
      zero_output_for_mask: masked steps emit zeros instead of the previous output.
      time_major: ``inputs`` are ``(T, B, ...)`` (``mask`` stays ``(B, T)``); the outputs are
        batch-major either way.
      mode: ``"tensorarray"`` or ``"tflite"``; default :func:`get_scan_mode`.
    """
    mode = mode or get_scan_mode()
    if mode not in SCAN_MODES:
        raise ValueError(f"mode must be one of {SCAN_MODES}, got {mode!r}")
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]
    inputs_tm = inputs if time_major else _time_major(inputs)
    mask_tm = None
    if mask is not None:
        mask_tm = tf.transpose(tf.cast(mask, tf.bool))
    if go_backwards:
        inputs_tm = tf.reverse(inputs_tm, [0])
        if mask_tm is not None:
            mask_tm = tf.reverse(mask_tm, [0])
    zero_output = tf.zeros_like(initial_states[0])

    def masked_step(x_t, m_t, prev_output, states):
        output, new_states = step(x_t, states)
        new_states = list(new_states)
        if m_t is None:
            return output, output, new_states
        new_states = [_masked_update(m_t, n, s) for n, s in zip(new_states, states)]
        carried = _masked_update(m_t, output, prev_output)
        emitted = _masked_update(m_t, output, zero_output) if zero_output_for_mask else carried
        return emitted, carried, new_states

    if mode == "tensorarray":
        return _scan_flat(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                          collect=return_sequences)
    return _scan_unrolled(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                          collect=return_sequences)


def _scan_flat(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect):
    """One step per iteration; inputs read from and outputs written to TensorArrays."""
    time_steps = tf.shape(inputs_tm)[0]
    n_states = len(initial_states)
    # Reading step t from a TensorArray has an O(1) gradient; slicing a tensor inside the loop
    # would build a dense (T, B, ...) gradient on every step (quadratic in T).
    inputs_ta = tf.TensorArray(inputs_tm.dtype, size=time_steps,
                               element_shape=inputs_tm.shape[1:]).unstack(inputs_tm)

    def body(t, prev_output, *rest):
        states = list(rest[:n_states])
        m_t = None if mask_tm is None else mask_tm[t]
        emitted, carried, new_states = masked_step(inputs_ta.read(t), m_t, prev_output, states)
        out = (t + 1, carried, *new_states)
        if collect:
            out += (rest[n_states].write(t, emitted),)
        return out

    loop_vars = (tf.constant(0), zero_output, *initial_states)
    if collect:
        loop_vars += (tf.TensorArray(zero_output.dtype, size=time_steps,
                                     element_shape=zero_output.shape),)
    result = tf.while_loop(lambda t, *_: t < time_steps, body, loop_vars,
                           maximum_iterations=time_steps, parallel_iterations=32)
    last_output = result[1]
    final_states = list(result[2:2 + n_states])
    outputs = None
    if collect:
        outputs = _batch_major(result[2 + n_states].stack())
    return last_output, outputs, final_states


def _blocks(x, n_blocks, unroll):
    """The first ``n_blocks * unroll`` steps of time-major ``x`` as (n_blocks, unroll, ...)."""
    return tf.reshape(x[:n_blocks * unroll], tf.concat([[n_blocks, unroll], tf.shape(x)[1:]], 0))


def _scan_unrolled(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect):
    """TensorList-free form for TFLite (see the module docstring).

    Full blocks of ``TFLITE_UNROLL`` steps run unrolled; with ``collect`` a block's outputs are
    stacked and written into a chunk buffer, and each chunk of ``TFLITE_CHUNK`` blocks into the
    output buffer. The last ``T mod TFLITE_UNROLL`` steps run one per iteration into a small
    tail buffer. Nothing is padded or masked beyond the caller's own mask.
    """
    unroll, chunk = TFLITE_UNROLL, TFLITE_CHUNK
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
        outputs = _batch_major(tf.concat([main_outputs, tail_outputs], 0))
    return last_output, outputs, final_states
