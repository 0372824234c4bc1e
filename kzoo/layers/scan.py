"""The one scan engine every kzoo recurrent layer runs on.

``scan(step, inputs, initial_states)`` folds ``(y_t, s_t) = step(x_t, s_{t-1})`` over the time axis
of ``inputs`` (batch-major, ``(B, T, ...)``), where ``x_t`` is the already projected input of step t
(the layers do the input projection of all steps as one matmul before calling the engine).

The loop is a single ``tf.while_loop`` that carries the states. How the per-step outputs are
collected depends on where the graph is going, chosen with :func:`scan_mode`:

* ``"tensorarray"`` (the default): a ``TensorArray``, linear in T in the TensorFlow runtime.
* ``"tflite"``: no TensorArray/TensorList at all, so the TFLite converter lowers the loop to
  builtin ``WHILE`` ops with dynamic batch and time. A loop-carried output buffer is copied by
  the runtime on every iteration, so the loop runs ``unroll`` steps per iteration (their outputs
  stacked, no buffer) and writes whole blocks into a small block buffer, which an outer loop
  writes into the full buffer: the full buffer is carried ``T / (unroll * chunk)`` times instead
  of T times.

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

    if mode == "tensorarray" or not return_sequences:
        return _scan_flat(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                          collect=return_sequences, use_tensorarray=mode == "tensorarray")
    return _scan_blocked(masked_step, inputs_tm, mask_tm, initial_states, zero_output)


def _scan_flat(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect,
               use_tensorarray):
    """One step per iteration; outputs (if any) in a TensorArray."""
    time_steps = tf.shape(inputs_tm)[0]
    n_states = len(initial_states)
    if use_tensorarray:
        # Reading step t from a TensorArray has an O(1) gradient; slicing a tensor inside the
        # loop would build a dense (T, B, ...) gradient on every step (quadratic in T).
        inputs_ta = tf.TensorArray(inputs_tm.dtype, size=time_steps,
                                   element_shape=inputs_tm.shape[1:]).unstack(inputs_tm)
        read = inputs_ta.read
    else:
        read = inputs_tm.__getitem__

    def body(t, prev_output, *rest):
        states = list(rest[:n_states])
        m_t = None if mask_tm is None else mask_tm[t]
        emitted, carried, new_states = masked_step(read(t), m_t, prev_output, states)
        out = (t + 1, carried, *new_states)
        if collect:
            out += (rest[n_states].write(t, emitted),)
        return out

    loop_vars = (tf.constant(0), zero_output, *initial_states)
    if collect:
        loop_vars += (tf.TensorArray(zero_output.dtype, size=time_steps,
                                     element_shape=zero_output.shape),)
    result = tf.while_loop(lambda t, *_: t < time_steps, body, loop_vars)
    last_output = result[1]
    final_states = list(result[2:2 + n_states])
    outputs = None
    if collect:
        outputs = _batch_major(result[2 + n_states].stack())
    return last_output, outputs, final_states


def _scan_blocked(masked_step, inputs_tm, mask_tm, initial_states, zero_output):
    """TensorList-free collection for TFLite (see module docstring)."""
    unroll, chunk = TFLITE_UNROLL, TFLITE_CHUNK
    time_steps = tf.shape(inputs_tm)[0]
    n_blocks = (time_steps + unroll - 1) // unroll
    n_chunks = (n_blocks + chunk - 1) // chunk
    padded = n_chunks * chunk * unroll
    pad = padded - time_steps
    # Steps past the end are masked: they carry the state, and their outputs are cut off.
    valid = tf.sequence_mask(time_steps, padded)
    if mask_tm is None:
        full_mask = tf.tile(valid[:, None], [1, tf.shape(inputs_tm)[1]])
    else:
        full_mask = tf.logical_and(
            tf.pad(mask_tm, [[0, pad], [0, 0]], constant_values=False), valid[:, None])
    x_pad = tf.pad(inputs_tm, [[0, pad]] + [[0, 0]] * (inputs_tm.shape.rank - 1))
    # (chunks, blocks, unroll, B, ...) so that every index below is a plain leading-axis gather.
    x_pad = tf.reshape(x_pad, tf.concat([[n_chunks, chunk, unroll], tf.shape(x_pad)[1:]], 0))
    full_mask = tf.reshape(full_mask, [n_chunks, chunk, unroll, -1])
    n_states = len(initial_states)
    out_shape = tf.shape(zero_output)

    def run_chunk(x_chunk, m_chunk, prev_output, states):
        def block_body(j, prev_output, chunk_buffer, *states):
            states = list(states)
            x_block, m_block = x_chunk[j], m_chunk[j]
            emitted_steps = []
            for u in range(unroll):
                emitted, prev_output, states = masked_step(
                    x_block[u], m_block[u], prev_output, states)
                emitted_steps.append(emitted)
            chunk_buffer = tf.tensor_scatter_nd_update(
                chunk_buffer, [[j]], tf.stack(emitted_steps)[None])
            return (j + 1, prev_output, chunk_buffer, *states)

        chunk_buffer = tf.zeros(tf.concat([[chunk, unroll], out_shape], 0), zero_output.dtype)
        result = tf.while_loop(lambda j, *_: j < chunk, block_body,
                               (tf.constant(0), prev_output, chunk_buffer, *states))
        return result[1], result[2], list(result[3:])

    def chunk_body(c, prev_output, buffer, *states):
        prev_output, chunk_buffer, states = run_chunk(x_pad[c], full_mask[c], prev_output,
                                                      list(states))
        buffer = tf.tensor_scatter_nd_update(buffer, [[c]], chunk_buffer[None])
        return (c + 1, prev_output, buffer, *states)

    buffer = tf.zeros(tf.concat([[n_chunks, chunk, unroll], out_shape], 0), zero_output.dtype)
    result = tf.while_loop(lambda c, *_: c < n_chunks, chunk_body,
                           (tf.constant(0), zero_output, buffer, *initial_states))
    last_output = result[1]
    final_states = list(result[3:3 + n_states])
    outputs = tf.reshape(result[2], tf.concat([[padded], out_shape], 0))[:time_steps]
    return last_output, _batch_major(outputs), final_states
