"""The TFLite form: TensorList-free loops the TFLite converter lowers to builtin ``WHILE`` ops.

No TensorArray/TensorList at all, so a file runs in LiteRT without Flex ops, with dynamic batch
and time. One step per iteration with static shapes inside the body (so LiteRT's XNNPACK delegate
runs it), no mask ops before the first masked step (for steps that are not wide, see
:func:`is_wide`), and outputs shifted through small registers (:data:`TFLITE_CHUNKS` rows, fewer
for wide outputs) rather than a loop-carried buffer the runtime would copy every step. A layer
that returns only its last output builds no buffer at all. Files quantized to int8 trace
:mod:`kzoo.layers.scan.tflite_int8` instead.
"""

import math

import tensorflow as tf

from kzoo.layers.scan.masking import batch_major

# Rows of the output registers, innermost first (see scan_tflite): a step copies about
# 3 * (16 + 16 + T / 256) output rows, linear in T up to a few thousand steps.
TFLITE_CHUNKS = (16, 16)
# Most bytes per batch row the output registers may hold beyond the sequence itself. A wide step
# output (a ConvLSTM frame of 64x64x32 floats is 512 KB) gets one level of fewer rows instead
# (see register_chunks): with TFLITE_CHUNKS its registers alone would take 256 MB per row.
TFLITE_REGISTER_BYTES = 4 << 20


def _shift_in(register, value):
    """``register`` (n, ...) without its first row and with ``value`` (...) as its last: an
    output write whose shapes are all static. (A scatter at a computed index has a computed
    output shape, which makes LiteRT reallocate the loop body on every iteration and keeps the
    XNNPACK delegate out of it.)"""
    return tf.concat([register[1:], tf.expand_dims(value, 0)], 0)


def _leading_valid_steps(mask_tm):
    """How many first steps of the time-major (T, B) mask are unmasked in every row (0..T)."""
    valid = tf.reduce_min(tf.cast(mask_tm, tf.int32), axis=1)
    # The first step with a masked row: argmin returns the first minimum; T if none.
    return tf.argmin(tf.concat([valid, [0]], 0), output_type=tf.int32)


def scan_tflite(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect):
    """TensorList-free form for TFLite: one step per ``WHILE`` iteration, shapes static inside.

    Args:
      masked_step: the step as the loops run it (:func:`kzoo.layers.scan.masking.masked`).
      inputs_tm: ``(T, B, ...)`` projected inputs.
      mask_tm: ``(T, B)`` bool or None.
      initial_states: list of ``(B, ...)`` tensors.
      zero_output: zeros shaped as a step output.
      collect: keep every step's output.

    Returns:
      ``(last_output, outputs, final_states)``, ``outputs`` batch-major or None.

    What makes a loop fast in LiteRT (``python benchmarks/tflite_speed.py``; figures in
    ``docs/scan_engine.md``): every tensor inside a loop body has a static shape. A computed
    shape (a reshape into blocks, a scatter) makes the interpreter reallocate the body on every
    iteration and keeps the XNNPACK delegate, which runs the step's matmul and elementwise ops,
    out of it. Unrolling several steps per iteration saved no time (a WHILE iteration itself
    costs little) and multiplied the graph, so the body holds one step, which reads ``x[t]`` and
    ``mask[t]`` with ``GATHER``.

    Masks: the steps before the first step with a masked row run in a loop without any mask
    op; the rest in a loop over ``masked_step``. A full-length batch never runs the second. A
    wide step (:func:`is_wide`) runs every step in the masked loop: its three selects are a
    tiny part of its work, and a second loop body is a second copy of the step in the file.

    Outputs (``collect``): a loop-carried buffer is copied on every iteration, so the outputs go
    through registers of :data:`TFLITE_CHUNKS` rows (a step shifts its output into the
    innermost, a full register is shifted into the next, the outermost holds the whole
    sequence), each written by :func:`_shift_in`. Blocks are aligned to the end of the
    sequence: the first block of each level is the partial one, its rows land at the end of
    its register, and the sequence is the last T rows of the outermost.
    """
    time_steps = tf.shape(inputs_tm)[0]
    n_states = len(initial_states)
    # Split at the first masked step: an unmasked loop, then a masked one (not for wide steps).
    split_at_mask = mask_tm is not None and not is_wide(zero_output)
    n_full = _leading_valid_steps(mask_tm) if split_at_mask else None

    def loop(start, stop, carry, masked, collecting):
        # carry: (prev_output, *states[, innermost register]); steps start .. stop - 1.
        def body(t, prev_output, *rest):
            m_t = tf.gather(mask_tm, t) if masked else None
            emitted, prev_output, states = masked_step(tf.gather(inputs_tm, t), m_t,
                                                       prev_output, list(rest[:n_states]))
            out = (t + 1, prev_output, *states)
            if collecting:
                out += (_shift_in(rest[n_states], emitted),)
            return out

        return tf.while_loop(lambda t, *_: t < stop, body, (start, *carry))[1:]

    def steps(start, stop, carry, collecting=False):
        if not split_at_mask:
            return loop(start, stop, carry, mask_tm is not None, collecting)
        split = tf.minimum(tf.maximum(n_full, start), stop)
        carry = loop(start, split, carry, False, collecting)
        return loop(split, stop, carry, True, collecting)

    if not collect:
        carry = steps(tf.constant(0), time_steps, (zero_output, *initial_states))
        return carry[0], None, list(carry[1:])

    # Virtual step v is step v - pad; the first `pad` virtual steps do not exist.
    chunks = register_chunks(zero_output)
    spans = [1]     # virtual steps per entry of each level's register
    for size in chunks:
        spans.append(spans[-1] * size)
    n_top = (time_steps + (spans[-1] - 1)) // spans[-1]
    pad = n_top * spans[-1] - time_steps
    sizes = list(chunks) + [n_top]
    registers, row_shape = [], tf.shape(zero_output)
    for size in sizes:
        row_shape = tf.concat([[size], row_shape], 0)
        registers.append(tf.zeros(row_shape, zero_output.dtype))

    def fill(level, start, carry):
        """Virtual steps start .. start + spans[level + 1] - 1 into registers[level];
        carry: (prev_output, *states, *registers[:level + 1])."""
        if level == 0:
            return steps(tf.maximum(start, pad) - pad, start + sizes[0] - pad, carry, True)
        unit = spans[level]

        def body(j, *carry):
            inner = fill(level - 1, start + j * unit, carry[:-1])
            return (j + 1, *inner, _shift_in(carry[-1], inner[-1]))

        # Entries holding only virtual steps are skipped (their rows stay at the front).
        first = tf.maximum(0, (pad - start) // unit)
        return tf.while_loop(lambda j, *_: j < sizes[level], body, (first, *carry))[1:]

    carry = fill(len(chunks), tf.constant(0),
                 (zero_output, *initial_states, *registers))
    rows = tf.reshape(carry[-1], tf.concat([[-1], tf.shape(zero_output)], 0))
    return carry[0], batch_major(rows[pad:]), list(carry[1:1 + n_states])


def _row_bytes(zero_output):
    """Bytes of one batch row of a step output, None where its shape is not static."""
    row = zero_output.shape[1:].num_elements()
    return None if row is None else row * zero_output.dtype.size


def is_wide(zero_output):
    """Whether a step output row is wide: :data:`TFLITE_CHUNKS` registers of it would exceed
    :data:`TFLITE_REGISTER_BYTES` (over 4096 floats; a 64x64x32 ConvLSTM frame is 131072).
    A step that wide computes far more than it copies or selects, so LiteRT's per-op costs,
    which the extra loops and register levels of :func:`scan_tflite` save, do not show."""
    row_bytes = _row_bytes(zero_output)
    return row_bytes is not None and row_bytes * math.prod(TFLITE_CHUNKS) > TFLITE_REGISTER_BYTES


def register_chunks(zero_output):
    """The register rows of :func:`scan_tflite` for this step output: :data:`TFLITE_CHUNKS`,
    or for a wide one (:func:`is_wide`) one level of at most :data:`TFLITE_REGISTER_BYTES`
    per batch row (a step then copies more rows, but computes far more than it copies)."""
    if not is_wide(zero_output):
        return TFLITE_CHUNKS
    return (max(1, min(TFLITE_CHUNKS[0], TFLITE_REGISTER_BYTES // _row_bytes(zero_output))),)
