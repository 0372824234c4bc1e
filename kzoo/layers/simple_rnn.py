"""Elman RNN: h_t = activation(x_t W + h_{t-1} U + b); the output is h_t."""

import keras
import tensorflow as tf

from kzoo.layers.bptt import SimpleRNNStepGradient, standard_activations
from kzoo.layers.cell import RecurrentCell, dense, in_compute_dtype
from kzoo.layers.recurrent import Recurrent


@keras.saving.register_keras_serializable(package="kzoo")
class SimpleRNNCell(RecurrentCell):
    """Elman cell, weight for weight ``keras.layers.SimpleRNNCell``:
    ``kernel`` (input_dim, units), ``recurrent_kernel`` (units, units), ``bias`` (units,)."""

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

    def step_gradient(self, recurrent_mask=None):
        if recurrent_mask is not None or not standard_activations(self):
            return None
        projection = [self.kernel] + ([self.bias] if self.use_bias else [])
        return SimpleRNNStepGradient([self.recurrent_kernel], projection=projection)


@keras.saving.register_keras_serializable(package="kzoo")
class SimpleRNN(Recurrent):
    """Elman RNN over a sequence; the arguments of ``keras.layers.SimpleRNN``."""

    def __init__(self, units, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = SimpleRNNCell(units, dtype=layer_kwargs.get("dtype"), name="simple_rnn_cell",
                             **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
