"""Masked steps and time-major tensors, as every loop form of the engine handles them.

A masked step (``mask[b, t] == False``) carries the previous state through and emits the
previous output (or zeros with ``zero_output_for_mask``), exactly as ``keras.layers.RNN`` does; a
fully masked row therefore returns its initial state.
"""

import tensorflow as tf


def time_major(x):
    """``(B, T, ...)`` <-> ``(T, B, ...)`` (the transposition is its own inverse)."""
    perm = [1, 0] + list(range(2, x.shape.rank))
    return tf.transpose(x, perm)


batch_major = time_major


def expand_mask(mask_t, like):
    """(B,) bool -> broadcastable to ``like`` (B, ...)."""
    return tf.reshape(mask_t, [-1] + [1] * (like.shape.rank - 1))


def expand_mask_seq(mask_tm, like):
    """(T, B) bool -> broadcastable to ``like`` (T, B, ...)."""
    return tf.reshape(mask_tm, tf.concat([tf.shape(mask_tm), [1] * (like.shape.rank - 2)], 0))


def masked_update(mask_t, new, old):
    """``new`` in the rows ``mask_t`` keeps, ``old`` elsewhere."""
    return tf.where(expand_mask(mask_t, new), new, old)


def masked(step, zero_output, zero_output_for_mask):
    """``step`` as the loops run it: ``(x_t, m_t, prev_output, states) -> (emitted, carried,
    new_states)``, where a masked row (``m_t`` False) keeps its states and output."""
    def masked_step(x_t, m_t, prev_output, states):
        output, new_states = step(x_t, states)
        new_states = list(new_states)
        if m_t is None:
            return output, output, new_states
        new_states = [masked_update(m_t, n, s) for n, s in zip(new_states, states)]
        carried = masked_update(m_t, output, prev_output)
        emitted = masked_update(m_t, output, zero_output) if zero_output_for_mask else carried
        return emitted, carried, new_states
    return masked_step


def emitted(mask_tm, zero_output_for_mask, last_output, sequence):
    """What a masked loop emits when its step output is its first state, as keras.layers.RNN:
    a masked step repeats the last output of an unmasked step, zeros before the first one
    (always zeros with ``zero_output_for_mask``). ``sequence`` is the time-major post-mask first
    state (or None); returns ``(last_output, sequence)``."""
    if mask_tm is None:
        return last_output, sequence
    seen = tf.math.cumsum(tf.cast(mask_tm, tf.int32), axis=0) > 0
    last_output = tf.where(expand_mask(seen[-1], last_output), last_output,
                           tf.zeros_like(last_output))
    if sequence is not None:
        shown = mask_tm if zero_output_for_mask else seen
        sequence = tf.where(expand_mask_seq(shown, sequence), sequence, tf.zeros_like(sequence))
    return last_output, sequence
