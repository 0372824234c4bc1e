"""GRU with update gate z and reset (relevance) gate r, in Keras' form:

    z = σ(x W_z + h U_z + b_z),  r = σ(x W_r + h U_r + b_r),
    h̃ = tanh(x W_h + (r ⊙ h) U_h + b_h)        (reset_after=False, the original form)
    h̃ = tanh(x W_h + r ⊙ (h U_h + b'_h))       (reset_after=True, the cuDNN form, Keras' default)
    h' = z ⊙ h + (1 - z) ⊙ h̃

The course writes the same cell as c' = Γ_u ⊙ c̃ + (1 - Γ_u) ⊙ c with Γ_u = 1 - z. Gate order
z, r, h; ``bias`` is (2, 3·units) with ``reset_after`` (input bias, recurrent bias).
"""

import keras
import tensorflow as tf

from kzoo.layers.bptt import GRUStepGradient, standard_activations
from kzoo.layers.cell import RecurrentCell, dense, get_activation, in_compute_dtype
from kzoo.layers.recurrent import Recurrent


@keras.saving.register_keras_serializable(package="kzoo")
class GRUCell(RecurrentCell):
    """GRU cell, weight for weight ``keras.layers.GRUCell``.

    Recurrent dropout masks ``h`` wherever it enters a matmul (Keras 3.15's default
    implementation silently ignores ``recurrent_dropout``; this cell applies it).
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = get_activation(type(self).__name__, "recurrent_activation",
                                                   recurrent_activation)
        self.reset_after = bool(reset_after)

    @property
    def state_size(self):
        return [self.units]

    def build(self, input_shape):
        self.input_features = input_shape[-1]
        self.kernel = self.add_kernel("kernel", (input_shape[-1], 3 * self.units), "kernel")
        self.recurrent_kernel = self.add_kernel("recurrent_kernel", (self.units, 3 * self.units),
                                                "recurrent")
        self._build_bias()

    def _build_bias(self):
        self.bias = None
        if self.use_bias:
            shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
            self.bias = self.add_kernel("bias", shape, "bias")

    def _input_transform(self, inputs, bias=None):
        return dense(inputs, self.kernel, bias)

    def _recurrent_transform(self, h, kernel):
        return tf.matmul(h, kernel)

    @in_compute_dtype
    def project_inputs(self, inputs):
        if not self.use_bias:
            return self._input_transform(inputs)
        return self._input_transform(inputs, self.bias[0] if self.reset_after else self.bias)

    @in_compute_dtype
    def step(self, projected, states, recurrent_mask=None):
        h = states[0]
        h_in = h if recurrent_mask is None else h * recurrent_mask
        units = self.units
        sigma, act = self.recurrent_activation, self.activation
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        if self.reset_after:
            inner = self._recurrent_transform(h_in, self.recurrent_kernel)
            if self.use_bias:
                inner = inner + self.bias[1]
            r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
            z = sigma(x_z + r_z)
            r = sigma(x_r + r_r)
            candidate = act(x_h + r * r_h)
        else:
            inner = self._recurrent_transform(h_in, self.recurrent_kernel[..., :2 * units])
            r_z, r_r = tf.split(inner, 2, axis=-1)
            z = sigma(x_z + r_z)
            r = sigma(x_r + r_r)
            candidate = act(x_h + self._recurrent_transform(
                r * h_in, self.recurrent_kernel[..., 2 * units:]))
        h_new = z * h + (1.0 - z) * candidate
        return h_new, [h_new]

    def step_gradient(self, recurrent_mask=None):
        if recurrent_mask is not None or not standard_activations(self) or not self.reset_after:
            return None
        weights = [self.recurrent_kernel] + ([self.bias[1]] if self.use_bias else [])
        return GRUStepGradient(
            weights, projection=[self.kernel] + ([self.bias[0]] if self.use_bias else []))

    def get_config(self):
        config = {
            "recurrent_activation": keras.saving.serialize_keras_object(
                self.recurrent_activation),
            "reset_after": self.reset_after,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="kzoo")
class GRU(Recurrent):
    """GRU over a sequence; the arguments of ``keras.layers.GRU``."""

    def __init__(self, units, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = GRUCell(units, dtype=layer_kwargs.get("dtype"), name="gru_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
