"""The engine's own backpropagation through time, from a cell's hand-derived step gradient.

Forward: :func:`kzoo.layers.scan.forward.forward_loop` keeping every step's saved tensors.
Backward: :func:`backward_loop`, one loop from the last step to the first over the step
gradient's ``backward``, masked steps passing their state gradient straight through and the
weights' gradients summed as it goes. With ``jit`` each of the two loops is one XLA computation
(:func:`_xla_loops`). With a ``projection`` (``kernel[, bias]``) the inputs are raw and both
loops run the projection step by step, so no (T, B, k·units) tensor exists in either direction.
"""

import tensorflow as tf

from kzoo.layers.scan.forward import forward_loop
from kzoo.layers.scan.masking import batch_major, emitted, expand_mask
from kzoo.layers.scan.tape import is_watched
from kzoo.layers.step_gradient import bias_gradient, kernel_gradient

# Steps whose weight gradients the XLA backward loop sums in one matmul (see backward_loop).
BPTT_WEIGHT_BLOCK = 8


def backward_loop(gradient, x_step, mask_tm, states_ta, saved_ta, d_sequence, d_states, weights,
                  raw_inputs=None, n_projection=0, need_d_x=True, block=1):
    """Backpropagation through the loop :func:`forward_loop` ran with ``keep``.

    Args:
      gradient: the :class:`kzoo.layers.step_gradient.StepGradient`.
      x_step: ``(shape, dtype)`` of one input step: the inputs themselves are not needed, and
        holding them until the backward pass would keep a whole (T, B, k·units) tensor alive.
      mask_tm: ``(T, B)`` bool or None.
      states_ta, saved_ta: what the forward loop kept.
      d_sequence: the gradient of the output sequence (time-major) or None.
      d_states: the gradients of the final states.
      weights: the step's weights, then (``n_projection``) the projection's.
      raw_inputs: the raw inputs the forward loop projected (with ``n_projection``).
      n_projection: 0, or the number of projection weights at the end of ``weights``.
      need_d_x: compute the inputs' gradient.
      block: with ``block`` > 1 (the XLA loops) the weights' gradients are summed over
        ``block`` steps at a time: an inner loop of ``block`` steps files each step's factors
        into (block, B, ·) buffers, and one matmul with ``block`` times the rows adds them up.
        A step's own (B, U)ᵀ @ (B, 4U) outer product is a slow shape for XLA's matmul, and XLA
        does not fuse the add of the whole gradient into it; a conditional flush in a single
        loop was slower still (XLA copies the buffers into the conditional on every step). See
        ``docs/scan_engine.md`` for the figures.

    Returns:
      ``(d_x, d_initial_states, d_weights)``: ``d_x`` time-major (of the raw inputs with
      ``n_projection``), None without ``need_d_x``.
    """
    n_recurrent = len(weights) - n_projection
    projection = weights[n_recurrent:]
    weights = weights[:n_recurrent]
    kernel_t = tf.transpose(weights[0])
    projection_t = tf.transpose(projection[0]) if n_projection and need_d_x else None
    time_steps = states_ta[0].size() - 1
    # d_x is d_recurrent for the LSTM and SimpleRNN: it is then not filed a second time.
    shared = gradient.recurrent_gradient_is_input_gradient

    def factors(h_prev, d_rec, x, d_x):
        """What a step files for its weights' gradients (values, or their widths)."""
        return [h_prev, d_rec] + ([x] + ([] if shared else [d_x]) if n_projection else [])

    def weight_gradients(h_prev, d_rec, x=None, d_x=None):
        """The weights' gradients from :func:`factors` of one step, or of a stack of steps."""
        grads = gradient.weight_gradients(h_prev, d_rec, weights)
        if n_projection:
            d_x = d_rec if d_x is None else d_x
            grads.append(kernel_gradient(x, d_x))
            if n_projection > 1:
                grads.append(bias_gradient(d_x))
        return grads

    def back(i, d_states, d_x_ta):
        """Step ``time_steps - 1 - i``: the previous states' gradients, and the factors of its
        weights' gradients."""
        t = time_steps - 1 - i
        states = [ta.read(t) for ta in states_ta]
        new_states = [ta.read(t + 1) for ta in states_ta]
        saved = [ta.read(t) for ta in saved_ta]
        d_states = list(d_states)
        if d_sequence is not None:
            d_states[0] = d_states[0] + d_sequence[t]
        kept = None
        if mask_tm is not None:
            m = expand_mask(mask_tm[t], d_states[0])
            kept = [tf.where(m, tf.zeros_like(d), d) for d in d_states]
            d_states = [tf.where(m, d, tf.zeros_like(d)) for d in d_states]
        d_x, d_prev, d_rec = gradient.backward(d_states, states, new_states, saved, kernel_t)
        if kept is not None:
            d_prev = [a + b for a, b in zip(d_prev, kept)]
        filed = factors(states[0], d_rec, raw_inputs[t] if n_projection else None, d_x)
        if n_projection and need_d_x:
            d_x = tf.matmul(d_x, projection_t)
        return d_prev, [ta.write(t, d_x) for ta in d_x_ta], filed

    def step_body(i, d_states, d_weights, d_x_ta):
        d_prev, d_x_ta, filed = back(i, d_states, d_x_ta)
        return i + 1, d_prev, [a + g for a, g in zip(d_weights, weight_gradients(*filed))], \
            d_x_ta

    def block_body(i, d_states, d_weights, d_x_ta, pending):
        def file_step(slot, i, d_states, d_x_ta, pending):
            d_prev, d_x_ta, filed = back(i, d_states, d_x_ta)
            pending = [tf.tensor_scatter_nd_update(buffer, [[slot]], value[None])
                       for buffer, value in zip(pending, filed)]
            return slot + 1, i + 1, d_prev, d_x_ta, pending

        # The first block takes the remainder of T / block: its unused slots are still zero.
        steps = tf.where(tf.equal(i, 0), (time_steps - 1) % block + 1, block)
        _, i, d_states, d_x_ta, pending = tf.while_loop(
            lambda slot, *_: slot < steps, file_step,
            (tf.constant(0), i, d_states, d_x_ta, pending),
            maximum_iterations=block, parallel_iterations=32)
        d_weights = [a + g for a, g in zip(d_weights, weight_gradients(*pending))]
        return i, d_states, d_weights, d_x_ta, pending

    d_x_ta = [tf.TensorArray(x_step[1], size=time_steps, element_shape=x_step[0])] \
        if need_d_x else []
    d_weights = [tf.zeros_like(w) for w in weights + projection]
    loop_vars = (tf.constant(0), list(d_states), d_weights, d_x_ta)
    if block == 1:
        body = step_body
    else:
        body = block_body
        # The batch size as a tensor: under scan_mode("xla") the graph's batch may be unknown
        # (XLA still compiles each call's concrete shapes).
        batch = tf.shape(d_states[0])[0]
        widths = factors(states_ta[0].element_shape[-1], weights[0].shape[-1], x_step[0][-1],
                         projection[0].shape[-1] if n_projection else None)
        loop_vars += ([tf.zeros(tf.stack([block, batch, w]), x_step[1]) for w in widths],)
    _, d_initial, d_weights, d_x_ta = tf.while_loop(
        lambda i, *_: i < time_steps, body, loop_vars, maximum_iterations=time_steps,
        parallel_iterations=32)[:4]
    return (d_x_ta[0].stack() if need_d_x else None), list(d_initial), d_weights


def scan_bptt(engine_step, inputs_tm, mask_tm, initial_states, collect, zero_output_for_mask,
              jit=False, projection=None):
    """The loop of ``engine_step`` with the engine's own gradient (under a gradient tape).

    Args:
      engine_step: the cell's :class:`kzoo.layers.step_gradient.EngineStep`.
      inputs_tm: ``(T, B, ...)`` inputs, raw with ``projection``.
      mask_tm: ``(T, B)`` bool or None.
      initial_states: list of ``(B, ...)`` tensors.
      collect: return the output sequence.
      zero_output_for_mask: masked steps emit zeros.
      jit: run each of the forward and backward loops as one XLA computation.
      projection: ``kernel[, bias]``: both loops project (and differentiate) step by step.

    Returns:
      ``(last_output, outputs, final_states)``, ``outputs`` batch-major or None; their gradient
      is the engine's.
    """
    gradient = engine_step.gradient
    n_states = len(initial_states)
    projection = list(projection or [])
    n_projection = len(projection)
    weights = [tf.convert_to_tensor(w) for w in engine_step.weights + projection]
    masks = [] if mask_tm is None else [mask_tm]
    x_step = (tuple(inputs_tm.shape[1:]), inputs_tm.dtype)
    # Inputs no tape watches (a first layer's data) need no gradient: TensorFlow would prune
    # its computation outside a loop, but not inside one.
    need_d_x = bool(is_watched([inputs_tm]))

    @tf.custom_gradient
    def run(inputs_tm, *flat):
        states0, weights = list(flat[:n_states]), list(flat[n_states:])
        time_steps = tf.shape(inputs_tm)[0]
        if jit:
            forward, backward = _xla_loops(gradient, n_states, n_projection, need_d_x)
            # Eagerly the tape would record the call and ask XLA for its intermediates (which
            # cannot leave XLA); this gradient is the custom one, so nothing is recorded.
            final_states, states_seq, saved_seq = forward(
                *tf.nest.map_structure(tf.stop_gradient, (inputs_tm, masks, states0, weights)))
            sequence = [states_seq[0][1:]] if collect else []
        else:
            final_states, states_ta, saved_ta = forward_loop(
                gradient.step, inputs_tm, mask_tm, states0, weights, keep=True,
                n_projection=n_projection)
            sequence = [states_ta[0].gather(tf.range(1, time_steps + 1))] if collect else []

        def grad(*upstream):
            upstream = list(upstream)
            d_sequence = [upstream.pop(0)] if collect else []
            d_states = [tf.zeros_like(s) if d is None else d
                        for d, s in zip(upstream, final_states)]
            # Raw inputs are needed backward only by a projection run inside the loops.
            raw = [inputs_tm] if n_projection else []
            if jit:
                d_x, d_initial, d_weights = backward(x_step, masks, states_seq, saved_seq,
                                                     d_sequence, d_states, weights, raw)
            else:
                d_x, d_initial, d_weights = backward_loop(
                    gradient, x_step, mask_tm, states_ta, saved_ta,
                    d_sequence[0] if d_sequence else None, d_states, weights, *raw,
                    n_projection=n_projection, need_d_x=need_d_x)
            return [d_x, *d_initial, *d_weights]

        return (*sequence, *final_states), grad

    result = run(inputs_tm, *initial_states, *weights)
    final_states = list(result[1:] if collect else result)
    last_output, sequence = emitted(mask_tm, zero_output_for_mask, final_states[0],
                                    result[0] if collect else None)
    return last_output, None if sequence is None else batch_major(sequence), final_states


# The XLA loops of one step gradient (its equations and configuration) and loop shape.
_XLA_LOOPS = {}


def _xla_loops(gradient, n_states, n_projection=0, need_d_x=True):
    """The forward and backward loops of :func:`scan_bptt` as XLA computations that exchange
    stacked tensors (TensorArrays cannot cross the boundary; inside XLA, stacking is free)."""
    key = (gradient, n_states, n_projection, need_d_x)
    if key in _XLA_LOOPS:
        return _XLA_LOOPS[key]

    def unstack(sequence):
        return tf.TensorArray(sequence.dtype, size=tf.shape(sequence)[0],
                              element_shape=sequence.shape[1:],
                              clear_after_read=False).unstack(sequence)

    def forward(inputs_tm, masks, states0, weights):
        final_states, states_ta, saved_ta = forward_loop(
            gradient.step, inputs_tm, masks[0] if masks else None, states0, weights,
            keep=True, n_projection=n_projection)
        return final_states, [ta.stack() for ta in states_ta], [ta.stack() for ta in saved_ta]

    def backward(x_step, masks, states_seq, saved_seq, d_sequence, d_states, weights, raw):
        return backward_loop(gradient, x_step, masks[0] if masks else None,
                             [unstack(s) for s in states_seq], [unstack(s) for s in saved_seq],
                             d_sequence[0] if d_sequence else None, d_states, weights, *raw,
                             n_projection=n_projection, need_d_x=need_d_x,
                             block=BPTT_WEIGHT_BLOCK)

    _XLA_LOOPS[key] = (tf.function(forward, jit_compile=True, autograph=False),
                       tf.function(backward, jit_compile=True, autograph=False))
    return _XLA_LOOPS[key]
