"""Elman RNN: h_t = activation(x_t W + h_{t-1} U + b); the output is h_t.

The cell's step and, beside it, the same step with its hand-derived gradient
(:class:`SimpleRNNStepGradient`), which the scan engine runs to backpropagate through time itself.
"""

import dataclasses

import keras
import tensorflow as tf

from kzoo.layers.cell import RecurrentCell, dense, in_compute_dtype, with_cell_args
from kzoo.layers.recurrent import Recurrent
from kzoo.layers.step_gradient import (EngineStep, StepGradient, kernel_gradient,
                                       standard_activations, tanh_grad)


@keras.saving.register_keras_serializable(package="kzoo")
@with_cell_args
class SimpleRNNCell(RecurrentCell):
    """Elman cell, weight for weight ``keras.layers.SimpleRNNCell``.

    Equation::

        h_t = activation(x_t W + h_{t-1} U + b)

    Weights: ``kernel`` W (input_dim, units), ``recurrent_kernel`` U (units, units), ``bias`` b
    (units,). State ``[h]``; the output is ``h``.

    Args:
      units: positive int, the size of ``h``.
      activation: the activation of ``h``; default ``"tanh"``.
      {cell_args}

    Call arguments:
      inputs: ``(batch, features)``, the input of one step.
      states: ``[h]`` of the previous step.
      training: apply dropout; default False.

    Returns:
      ``(h, [h])``.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.SimpleRNNCell(3)
    output, states = cell(tf.zeros((2, 4)), [tf.zeros((2, 3))])    # output (2, 3)
    ```
    """

    @property
    def state_size(self):
        return [self.units]

    def build(self, input_shape):
        self.input_features = input_shape[-1]
        self.kernel = self.add_kernel("kernel", (input_shape[-1], self.units), "kernel")
        self.recurrent_kernel = self.add_kernel("recurrent_kernel", (self.units, self.units),
                                                "recurrent")
        self.bias = self.add_kernel("bias", (self.units,), "bias") if self.use_bias else None

    @in_compute_dtype
    def project_inputs(self, inputs):
        return dense(inputs, self.kernel, self.bias)

    @in_compute_dtype
    def step(self, projected, states, recurrent_mask=None):
        h = states[0]
        if recurrent_mask is not None:
            h = h * recurrent_mask
        h = self.activation(projected + tf.matmul(h, self.recurrent_kernel))
        return h, [h]

    def engine_step(self, recurrent_mask=None):
        if recurrent_mask is not None or not standard_activations(self):
            return None
        projection = [self.kernel] + ([self.bias] if self.use_bias else [])
        return EngineStep(SimpleRNNStepGradient(), [self.recurrent_kernel], projection)


@dataclasses.dataclass(frozen=True)
class SimpleRNNStepGradient(StepGradient):
    """``h' = tanh(x + h R)``; backward ``d_pre = (1 - h'²) d_h'``, ``d_h = d_pre Rᵀ``."""

    def step(self, x_t, states, weights):
        h = tf.tanh(x_t + tf.matmul(states[0], weights[0]))
        return [h], []

    def backward(self, d_states, states, new_states, saved, kernel_t):
        d_pre = tanh_grad(new_states[0], d_states[0])
        return d_pre, [tf.matmul(d_pre, kernel_t)], d_pre

    def weight_gradients(self, h_prev, d_recurrent, weights):
        return [kernel_gradient(h_prev, d_recurrent)]


@keras.saving.register_keras_serializable(package="kzoo")
class SimpleRNN(Recurrent):
    """Elman RNN over a sequence; the arguments of ``keras.layers.SimpleRNN``.

    Args:
      units: positive int, the size of the hidden state.
      **kwargs: the cell's (:class:`SimpleRNNCell`) and the layer's
        (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, features)``, floating point.
      initial_state: ``h`` (or ``[h]``), ``(batch, units)``; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ``h`` of the last step, or every step's ``(batch, time, units)`` with
      ``return_sequences``; then with ``return_state`` the final ``h``.

    Raises:
      ValueError: as :class:`kzoo.layers.Recurrent` (input rank, mask shape, initial states).

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    mask = tf.sequence_mask([5, 2], 5)             # the second sequence has 2 steps
    outputs, h = kzoo.layers.SimpleRNN(3, return_sequences=True, return_state=True)(
        tf.zeros((2, 5, 4)), mask=mask)            # outputs (2, 5, 3), h (2, 3)
    ```
    """

    def __init__(self, units, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = SimpleRNNCell(units, dtype=layer_kwargs.get("dtype"), name="simple_rnn_cell",
                             **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
