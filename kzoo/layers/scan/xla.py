"""XLA inference: the forward pass of a cell's engine step as one XLA computation.

XLA fuses each step's elementwise work into a few kernels where the TensorFlow runtime dispatches
a dozen ops per step; it compiles once per input shape. Graphs traced for export never hold it
(TensorFlow Serving does not run XLA on a CPU by default): the plan keeps it to the ``"keras"``
trace target.
"""

import tensorflow as tf

from kzoo.layers.scan.forward import forward_loop
from kzoo.layers.scan.masking import batch_major, emitted

# One compiled function per step gradient (its equations and configuration) and loop shape;
# XLA then compiles it once per input shape.
_FORWARDS = {}


def scan_xla(engine_step, inputs_tm, mask_tm, initial_states, collect, zero_output_for_mask,
             projection=None):
    """Run ``engine_step`` (:class:`kzoo.layers.step_gradient.EngineStep`) forward under XLA.

    Args:
      engine_step: the cell's engine step.
      inputs_tm: ``(T, B, ...)`` inputs, raw with ``projection``.
      mask_tm: ``(T, B)`` bool or None.
      initial_states: list of ``(B, ...)`` tensors.
      collect: keep the output sequence (nothing else is kept across steps).
      zero_output_for_mask: masked steps emit zeros.
      projection: ``kernel[, bias]``: each step projects its own raw input.

    Returns:
      ``(last_output, outputs, final_states)``, ``outputs`` batch-major or None.
    """
    projection = list(projection or [])
    key = (engine_step.gradient, len(initial_states), collect, mask_tm is not None,
           zero_output_for_mask, len(projection))
    if key not in _FORWARDS:
        _FORWARDS[key] = tf.function(
            _forward_fn(engine_step.gradient, collect, zero_output_for_mask, len(projection)),
            jit_compile=True, autograph=False)
    weights = [tf.convert_to_tensor(w) for w in engine_step.weights + projection]
    masks = [] if mask_tm is None else [mask_tm]
    last_output, sequence, final_states = _FORWARDS[key](inputs_tm, masks, list(initial_states),
                                                         weights)
    return last_output, None if sequence is None else batch_major(sequence), list(final_states)


def _forward_fn(gradient, collect, zero_output_for_mask, n_projection):
    def forward(inputs_tm, masks, states0, weights):
        mask_tm = masks[0] if masks else None
        projection = weights[len(weights) - n_projection:]
        weights = weights[:len(weights) - n_projection]
        scale, step = None, gradient.step
        form = gradient.inference_form(weights)
        if form is not None:
            scale, weights, step = form
        if scale is not None:
            # (x W + b) * s = x (W * s) + b * s: the scale goes where the projection happens.
            if projection:
                projection = [p * scale for p in projection]
            else:
                inputs_tm = inputs_tm * scale
        final_states, states_ta, _ = forward_loop(
            step, inputs_tm, mask_tm, states0, weights + projection, keep=False,
            n_projection=n_projection, recorded=1 if collect else 0)
        sequence = None
        if collect:
            sequence = states_ta[0].gather(tf.range(1, tf.shape(inputs_tm)[0] + 1))
        last_output, sequence = emitted(mask_tm, zero_output_for_mask, final_states[0], sequence)
        return last_output, sequence, final_states
    return forward
