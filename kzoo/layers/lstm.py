"""LSTM (Hochreiter & Schmidhuber 1997, forget gate Gers et al. 2000) and its variants.

    i = σ(x W_i + h U_i + b_i [+ p_i ⊙ c]),  f = σ(x W_f + h U_f + b_f [+ p_f ⊙ c]),
    c' = f ⊙ c + i ⊙ tanh(x W_c + h U_c + b_c),  o = σ(x W_o + h U_o + b_o [+ p_o ⊙ c']),
    h' = o ⊙ tanh(c')  [then h' P with a projection]

Gate order i, f, c, o in ``kernel``/``recurrent_kernel``/``bias``, as ``keras.layers.LSTM``.
``use_forget_gate=False`` is the original constant error carousel ``c' = c + i ⊙ c̃`` (gates
i, c, o); ``peephole`` adds the ``p_*`` terms; ``layer_norm`` normalizes ``x W``, ``h U`` and
``c'`` (TensorFlow Addons' ``LayerNormLSTMCell``); ``proj_units`` projects ``h`` (PyTorch's
``proj_size``).
"""

import keras
import tensorflow as tf

from kzoo.layers.bptt import LSTMStepGradient, standard_activations
from kzoo.layers.cell import RecurrentCell, check_positive_int, dense, get_activation, \
    in_compute_dtype
from kzoo.layers.recurrent import Recurrent


@keras.saving.register_keras_serializable(package="kzoo")
class LSTMCell(RecurrentCell):
    """LSTM cell; with default options weight for weight ``keras.layers.LSTMCell``.

    State ``[h, c]``: ``h`` has ``proj_units`` (or ``units``) features, ``c`` has ``units``.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_forget_gate=True, unit_forget_bias=True, peephole=False, layer_norm=False,
                 norm_epsilon=1e-3, proj_units=None, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        name = type(self).__name__
        self.recurrent_activation = get_activation(name, "recurrent_activation",
                                                   recurrent_activation)
        self.use_forget_gate = bool(use_forget_gate)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.norm_epsilon = float(norm_epsilon)
        self.proj_units = None if proj_units is None else check_positive_int(
            name, "proj_units", proj_units)
        self.n_gates = 4 if self.use_forget_gate else 3
        # Peephole weights start small so a new peephole LSTM starts close to a plain one.
        self.peephole_initializer = keras.initializers.RandomUniform(-0.1, 0.1, seed=self.seed)
        if self.layer_norm:
            norm = dict(epsilon=self.norm_epsilon, dtype=self.dtype_policy)
            self.kernel_norm = keras.layers.LayerNormalization(name="kernel_norm", **norm)
            self.recurrent_norm = keras.layers.LayerNormalization(name="recurrent_norm", **norm)
            self.state_norm = keras.layers.LayerNormalization(name="state_norm", **norm)

    @property
    def state_size(self):
        return [self.proj_units or self.units, self.units]

    def _bias_initializer(self, shape, dtype=None):
        units = self.units
        if self.unit_forget_bias and self.use_forget_gate:
            return tf.concat([
                self.bias_initializer((units,), dtype=dtype),
                tf.ones((units,), dtype=dtype),
                self.bias_initializer((2 * units,), dtype=dtype),
            ], 0)
        return self.bias_initializer(shape, dtype=dtype)

    def build(self, input_shape):
        gates = self.n_gates * self.units
        self.input_features = input_shape[-1]
        self.kernel = self.add_kernel("kernel", (input_shape[-1], gates), "kernel")
        self.recurrent_kernel = self.add_kernel(
            "recurrent_kernel", (self.proj_units or self.units, gates), "recurrent")
        self._build_common()

    def _build_common(self):
        """Weights shared by the dense and convolutional forms: bias, peepholes, norms."""
        gates = self.n_gates * self.units
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(gates,),
                                        initializer=self._bias_initializer,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        if self.peephole:
            names = ["input_gate_peephole_weights"]
            if self.use_forget_gate:
                names.append("forget_gate_peephole_weights")
            names.append("output_gate_peephole_weights")
            self.peephole_weights = [
                self.add_weight(name=n, shape=(self.units,),
                                initializer=self.peephole_initializer)
                for n in names
            ]
        if self.proj_units:
            self.projection_kernel = self.add_kernel(
                "projection_kernel", (self.units, self.proj_units), "kernel")
        if self.layer_norm:
            self.kernel_norm.build((None, gates))
            self.recurrent_norm.build((None, gates))
            self.state_norm.build((None, self.units))

    def _input_transform(self, inputs, bias=None):
        return dense(inputs, self.kernel, bias)

    def _recurrent_transform(self, h):
        return tf.matmul(h, self.recurrent_kernel)

    @in_compute_dtype
    def project_inputs(self, inputs):
        if not self.layer_norm:
            return self._input_transform(inputs, self.bias)
        z = self.kernel_norm(self._input_transform(inputs))
        return tf.nn.bias_add(z, self.bias) if self.use_bias else z

    @in_compute_dtype
    def step(self, projected, states, recurrent_mask=None):
        h, c = states
        if recurrent_mask is not None:
            h = h * recurrent_mask
        r = self._recurrent_transform(h)
        if self.layer_norm:
            r = self.recurrent_norm(r)
        z = projected + r
        sigma, act = self.recurrent_activation, self.activation
        if self.use_forget_gate:
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        else:
            z_i, z_c, z_o = tf.split(z, 3, axis=-1)
        if self.peephole:
            p_i, p_o = self.peephole_weights[0], self.peephole_weights[-1]
            z_i = z_i + p_i * c
            if self.use_forget_gate:
                z_f = z_f + self.peephole_weights[1] * c
        i = sigma(z_i)
        if self.use_forget_gate:
            c_new = sigma(z_f) * c + i * act(z_c)
        else:
            c_new = c + i * act(z_c)
        if self.layer_norm:
            c_new = self.state_norm(c_new)
        if self.peephole:
            z_o = z_o + p_o * c_new
        h_new = sigma(z_o) * act(c_new)
        if self.proj_units:
            h_new = tf.matmul(h_new, self.projection_kernel)
        return h_new, [h_new, c_new]

    def step_gradient(self, recurrent_mask=None):
        if (recurrent_mask is not None or not standard_activations(self) or self.peephole
                or self.layer_norm or self.proj_units or not self.use_forget_gate):
            return None
        projection = [self.kernel] + ([self.bias] if self.use_bias else [])
        return LSTMStepGradient([self.recurrent_kernel], projection=projection)

    def get_config(self):
        config = {
            "recurrent_activation": keras.saving.serialize_keras_object(
                self.recurrent_activation),
            "use_forget_gate": self.use_forget_gate,
            "unit_forget_bias": self.unit_forget_bias,
            "peephole": self.peephole,
            "layer_norm": self.layer_norm,
            "norm_epsilon": self.norm_epsilon,
            "proj_units": self.proj_units,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="kzoo")
class LSTM(Recurrent):
    """LSTM over a sequence; the arguments of ``keras.layers.LSTM`` plus the cell's variants."""

    def __init__(self, units, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = LSTMCell(units, dtype=layer_kwargs.get("dtype"), name="lstm_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
