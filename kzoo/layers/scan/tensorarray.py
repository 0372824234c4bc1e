"""The TensorFlow loop: one step per iteration, outputs collected in a ``TensorArray``.

Linear in T in the TensorFlow runtime. It runs inference in graphs the engine does not compile
(exports, dynamic shapes, large steps), and the cells TensorFlow differentiates. Without a tape
each step projects its own input inside the loop (the plan's ``projection="each_step"``): the
projections of later steps run beside the recurrence on a second core, and no
``(T, B, k·units)`` tensor is held.
"""

import tensorflow as tf

from kzoo.layers.scan.masking import batch_major


def scan_tensorarray(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect,
                     carry_output=True, project=None, taped=False):
    """Run ``masked_step`` (:func:`kzoo.layers.scan.masking.masked`) over time-major inputs.

    Args:
      masked_step: the step as the loops run it.
      inputs_tm: ``(T, B, ...)`` inputs (raw with ``project``).
      mask_tm: ``(T, B)`` bool or None.
      initial_states: list of ``(B, ...)`` tensors.
      zero_output: zeros shaped as a step output.
      collect: keep every step's output.
      carry_output: carry the last output through the loop; without it the last output is the
        final first state (true of an unmasked loop whose output is its first state).
      project: applied to each step's input inside the loop, or None.
      taped: TensorFlow differentiates the loop: step t is then read from a ``TensorArray``
        (its gradient is O(1) per step, where slicing the tensor inside the loop would build a
        dense (T, B, ...) gradient on every step). Without a tape ``x[t]`` is a view and saves
        unstacking (copying) x.

    Returns:
      ``(last_output, outputs, final_states)``, ``outputs`` batch-major or None.
    """
    time_steps = tf.shape(inputs_tm)[0]
    n_states = len(initial_states)
    if taped:
        read = tf.TensorArray(inputs_tm.dtype, size=time_steps,
                              element_shape=inputs_tm.shape[1:]).unstack(inputs_tm).read
    else:
        def read(t):
            return inputs_tm[t]
    if project is not None:
        read_raw = read

        def read(t):
            return project(read_raw(t))

    def body(t, *rest):
        prev_output = rest[0] if carry_output else None
        rest = rest[1:] if carry_output else rest
        states = list(rest[:n_states])
        m_t = None if mask_tm is None else mask_tm[t]
        emitted, carried, new_states = masked_step(read(t), m_t, prev_output, states)
        out = (t + 1, carried, *new_states) if carry_output else (t + 1, *new_states)
        if collect:
            out += (rest[n_states].write(t, emitted),)
        return out

    loop_vars = (tf.constant(0), *([zero_output] if carry_output else []), *initial_states)
    if collect:
        loop_vars += (tf.TensorArray(zero_output.dtype, size=time_steps,
                                     element_shape=zero_output.shape),)
    result = tf.while_loop(lambda t, *_: t < time_steps, body, loop_vars,
                           maximum_iterations=time_steps, parallel_iterations=32)
    result = result[1:] if carry_output else (result[1], *result[1:])
    last_output = result[0]
    final_states = list(result[1:1 + n_states])
    outputs = None
    if collect:
        outputs = batch_major(result[1 + n_states].stack())
    return last_output, outputs, final_states
