"""Hand-derived step gradients, so the scan engine runs backpropagation through time itself.

TensorFlow's automatic gradient of a ``tf.while_loop`` that reads a precomputed input from a
``TensorArray`` accumulates a zero-filled copy of the whole ``(T, B, k·units)`` list and adds
lists on every step (a third of an LSTM training step at (64, 100, 64, 128)). For the standard
cells the engine instead keeps the few tensors the backward step needs and runs one reverse loop
of the derivatives below, accumulating the weights' gradients as it goes (step by step, or a
block of a few steps per matmul in the XLA loop), so that no whole-sequence gradient tensor is
ever held.

A :class:`StepGradient` is a cell's step written twice:

* ``step(x_t, states, weights) -> (new_states, saved)``: the forward step (``new_states[0]``
  is the output); ``saved`` are the tensors of this step the backward step reads.
* ``backward(d_states, states, new_states, saved, kernel_t) -> (d_x_t, d_states_prev,
  d_recurrent)``:
  given the gradient of the loss with respect to ``new_states``, the gradients with respect to
  the step's projected input and its previous states, and ``d_recurrent``, the gradient with
  respect to the recurrent matmul's output ``states[0] @ recurrent_kernel`` (plus its bias).
  ``kernel_t`` is the recurrent kernel transposed (once, before the loop: XLA runs a matmul
  with a transposed operand slower, 35 against 23 µs for a (32, 512) @ (512, 128) step).
* ``weight_gradients(h_prev, d_recurrent, weights)``: the recurrent weights' gradients from
  ``states[0]`` before a step and the step's ``d_recurrent``, or from stacks of both (the
  engine sums blocks of steps in one matmul).
* ``projection``: ``[kernel, bias]`` when the cell's input projection is ``x kernel + bias``; the
  engine then projects ``x_t`` inside its loops and differentiates that too.

Cells return one from ``step_gradient(recurrent_mask)`` when their configuration is one of these
(default activations, no recurrent dropout), else ``None`` and the engine falls back to
TensorFlow's gradient of the same loop.
"""

import keras
import tensorflow as tf


def _is(activation, name):
    return activation is getattr(keras.activations, name)


def _sigmoid_grad(y, dy):
    """``dy * y * (1 - y)`` for ``y = sigmoid(x)``, in one kernel."""
    return tf.raw_ops.SigmoidGrad(y=y, dy=dy)


def _tanh_grad(y, dy):
    """``dy * (1 - y²)`` for ``y = tanh(x)``, in one kernel."""
    return tf.raw_ops.TanhGrad(y=y, dy=dy)


def kernel_gradient(h_prev, d_recurrent):
    """``h_{t-1}ᵀ d_t`` summed over the batch rows (and the steps, for stacks of them)."""
    return tf.matmul(_rows(h_prev), _rows(d_recurrent), transpose_a=True)


def bias_gradient(d_output):
    """``d_t`` summed over the batch rows (and the steps, for stacks of them)."""
    return tf.reduce_sum(_rows(d_output), 0)


def _rows(x):
    """``x`` as a matrix of rows, its width static where it is known. (A (1, n) kernel gradient
    of unknown shape, added to the accumulated one, was taken for a bias add by TensorFlow's
    graph optimizer with oneDNN, whose kernel then refused the (1, n) "bias".)"""
    width = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    return tf.reshape(x, [-1, width])


class StepGradient:
    """See the module docstring. ``weights`` are what the step reads (recurrent kernel first);
    the engine passes them into ``tf.custom_gradient`` as tensors and hands each method those
    tensors, and TensorFlow carries their gradients on to the variables."""

    # True when ``backward``'s ``d_recurrent`` is always its ``d_x_t`` (one buffer serves both).
    recurrent_gradient_is_input_gradient = True

    def __init__(self, weights, projection=None):
        self.weights = list(weights)
        # ``[kernel]`` or ``[kernel, bias]`` when the cell's input projection is exactly
        # ``x kernel + bias``: the engine may then run and differentiate it inside its loops.
        self.projection = None if projection is None else list(projection)

    def inference_form(self, weights):
        """``(input_scale, weights, step)``: a cheaper equivalent of ``step`` for an XLA
        forward pass nobody differentiates, run on the projected inputs times ``input_scale``
        (a vector, or None), or ``None`` to run ``step`` itself."""
        return None


class SimpleRNNStepGradient(StepGradient):
    """``h' = tanh(x + h R)``."""

    def step(self, x_t, states, weights):
        h = tf.tanh(x_t + tf.matmul(states[0], weights[0]))
        return [h], []

    def backward(self, d_states, states, new_states, saved, kernel_t):
        d_pre = _tanh_grad(new_states[0], d_states[0])
        return d_pre, [tf.matmul(d_pre, kernel_t)], d_pre

    def weight_gradients(self, h_prev, d_recurrent, weights):
        return [kernel_gradient(h_prev, d_recurrent)]


class LSTMStepGradient(StepGradient):
    """``z = x + h R``; ``i, f, o = σ(z_i, z_f, z_o)``, ``g = tanh(z_c)``; ``c' = f c + i g``;
    ``h' = o tanh(c')``."""

    def step(self, x_t, states, weights):
        h, c = states
        z = x_t + tf.matmul(h, weights[0])
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_c), tf.sigmoid(z_o)
        c_new = f * c + i * g
        # tanh(c') is recomputed backward from the kept c': a (T, B, units) tensor less to hold.
        return [o * tf.tanh(c_new), c_new], [i, f, g, o]

    def inference_form(self, weights):
        """``σ(z) = (1 + tanh(z / 2)) / 2``: one tanh over all four gates, the inputs and kernel
        scaled by 1/2 (exact in floating point) for the σ gates."""
        units = tf.shape(weights[0])[-1] // 4
        dtype = weights[0].dtype
        half, one = tf.fill([units], tf.constant(0.5, dtype)), tf.ones([units], dtype)
        scale = tf.concat([half, half, one, half], 0)
        shift = tf.concat([half, half, tf.zeros([units], dtype), half], 0)

        def step(x_t, states, weights):
            h, c = states
            gates = tf.tanh(x_t + tf.matmul(h, weights[0])) * scale + shift
            i, f, g, o = tf.split(gates, 4, axis=-1)
            c_new = f * c + i * g
            return [o * tf.tanh(c_new), c_new], []

        return scale, [weights[0] * scale], step

    def backward(self, d_states, states, new_states, saved, kernel_t):
        d_h, d_c = d_states
        c = states[1]
        i, f, g, o = saved
        tanh_c = tf.tanh(new_states[1])
        d_c = d_c + _tanh_grad(tanh_c, d_h * o)
        d_z = tf.concat([_sigmoid_grad(i, d_c * g), _sigmoid_grad(f, d_c * c),
                         _tanh_grad(g, d_c * i), _sigmoid_grad(o, d_h * tanh_c)], axis=-1)
        d_h_prev = tf.matmul(d_z, kernel_t)
        return d_z, [d_h_prev, d_c * f], d_z

    def weight_gradients(self, h_prev, d_recurrent, weights):
        return [kernel_gradient(h_prev, d_recurrent)]


class GRUStepGradient(StepGradient):
    """Keras' ``reset_after`` GRU: ``(r_z, r_r, r_h) = h R + b_r``; ``z = σ(x_z + r_z)``,
    ``r = σ(x_r + r_r)``, ``n = tanh(x_h + r ⊙ r_h)``; ``h' = n + z ⊙ (h - n)``."""

    recurrent_gradient_is_input_gradient = False

    def step(self, x_t, states, weights):
        h = states[0]
        units = weights[0].shape[0]
        inner = tf.matmul(h, weights[0])
        if len(weights) > 1:
            inner = tf.nn.bias_add(inner, weights[1])      # fused into the matmul
        # z and r side by side: one add and one sigmoid for both gates (fewer ops per step).
        x_zr, x_h = tf.split(x_t, [2 * units, units], axis=-1)
        r_zr, r_h = tf.split(inner, [2 * units, units], axis=-1)
        z, r = tf.split(tf.sigmoid(x_zr + r_zr), 2, axis=-1)
        n = tf.tanh(x_h + r * r_h)
        return [n + z * (h - n)], [z, r, n, r_h]

    def backward(self, d_states, states, new_states, saved, kernel_t):
        d_h = d_states[0]
        h = states[0]
        z, r, n, r_h = saved
        d_z = _sigmoid_grad(z, d_h * (h - n))
        d_n = _tanh_grad(n, d_h - d_h * z)
        d_r = _sigmoid_grad(r, d_n * r_h)
        d_inner = tf.concat([d_z, d_r, d_n * r], axis=-1)
        d_h_prev = d_h * z + tf.matmul(d_inner, kernel_t)
        return tf.concat([d_z, d_r, d_n], axis=-1), [d_h_prev], d_inner

    def weight_gradients(self, h_prev, d_recurrent, weights):
        grads = [kernel_gradient(h_prev, d_recurrent)]
        if len(weights) > 1:
            grads.append(bias_gradient(d_recurrent))
        return grads


def standard_activations(cell):
    """True when ``cell`` uses tanh (and sigmoid gates), the activations derived here."""
    recurrent = getattr(cell, "recurrent_activation", keras.activations.sigmoid)
    return _is(cell.activation, "tanh") and _is(recurrent, "sigmoid")
