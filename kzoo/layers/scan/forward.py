"""The forward loop of the engine's own steps (``StepGradient.step``), which both the engine's
backpropagation (:mod:`kzoo.layers.scan.bptt`, keeping what the backward loop reads) and its XLA
inference (:mod:`kzoo.layers.scan.xla`, keeping nothing) run."""

import tensorflow as tf

from kzoo.layers.cell import dense
from kzoo.layers.scan.masking import masked_update


def forward_loop(step, inputs_tm, mask_tm, states0, weights, keep, n_projection=0,
                 recorded=None):
    """Run ``step(x_t, states, weights) -> (new_states, saved)`` over time-major inputs.

    Args:
      step: a step gradient's step (or its inference form).
      inputs_tm: ``(T, B, ...)`` inputs, projected unless ``n_projection``.
      mask_tm: ``(T, B)`` bool or None: a masked row keeps its states.
      states0: the initial states.
      weights: what ``step`` reads; with ``n_projection`` followed by ``kernel[, bias]``, and
        step t then reads ``x_t kernel + bias``.
      keep: keep every step's saved tensors (references, not copies).
      n_projection: 0, or how many of the last weights are the input projection.
      recorded: keep the sequences of only the first ``recorded`` states (all by default).

    Returns:
      ``(final_states, states_ta, saved_ta)``: ``states_ta[k]`` holds s_0 ... s_T (post-mask;
      step t reads index t and writes t + 1); ``saved_ta`` is empty without ``keep``.
    """
    time_steps = tf.shape(inputs_tm)[0]
    # clear_after_read=False: the backward pass reads every state twice, and eagerly a
    # TensorArray forgets what was read.
    states_ta = [tf.TensorArray(s.dtype, size=time_steps + 1, element_shape=s.shape,
                                clear_after_read=False).write(0, s)
                 for s in states0[:len(states0) if recorded is None else recorded]]

    def body(t, states, states_ta, saved_ta):
        # x[t] of the time-major tensor is a view (gather would copy the step).
        x_t = inputs_tm[t]
        if n_projection:
            x_t = dense(x_t, *weights[-n_projection:])
        new_states, saved = step(x_t, states, weights[:len(weights) - n_projection])
        if mask_tm is not None:
            new_states = [masked_update(mask_tm[t], n, s) for n, s in zip(new_states, states)]
        states_ta = [ta.write(t + 1, n) for ta, n in zip(states_ta, new_states)]
        if keep:
            if saved_ta is None:
                saved_ta = [tf.TensorArray(v.dtype, size=time_steps, element_shape=v.shape,
                                           clear_after_read=False) for v in saved]
            saved_ta = [ta.write(t, v) for ta, v in zip(saved_ta, saved)]
        return t + 1, new_states, states_ta, saved_ta or []

    # The saved tensors' number and shapes are known once a step is traced, so the first step
    # runs before the loop.
    first = body(tf.constant(0), states0, states_ta, None)
    _, final_states, states_ta, saved_ta = tf.while_loop(
        lambda t, *_: t < time_steps, body, first, maximum_iterations=time_steps - 1,
        parallel_iterations=32)
    return final_states, states_ta, saved_ta
