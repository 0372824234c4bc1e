"""LSTM (Hochreiter & Schmidhuber 1997, forget gate Gers et al. 2000) and its variants.

    i = σ(x W_i + h U_i + b_i [+ p_i ⊙ c]),  f = σ(x W_f + h U_f + b_f [+ p_f ⊙ c]),
    c' = f ⊙ c + i ⊙ tanh(x W_c + h U_c + b_c),  o = σ(x W_o + h U_o + b_o [+ p_o ⊙ c']),
    h' = o ⊙ tanh(c')  [then h' P with a projection]

Gate order i, f, c, o in ``kernel``/``recurrent_kernel``/``bias``, as ``keras.layers.LSTM``.
``use_forget_gate=False`` is the original constant error carousel ``c' = c + i ⊙ c̃`` (gates
i, c, o); ``peephole`` adds the ``p_*`` terms; ``layer_norm`` normalizes ``x W``, ``h U`` and
``c'`` (TensorFlow Addons' ``LayerNormLSTMCell``); ``proj_units`` projects ``h`` (PyTorch's
``proj_size``).

Beside the cell, :class:`LSTMStepGradient` is the standard configuration's step with its
hand-derived gradient, which the scan engine runs to backpropagate through time itself.
"""

import dataclasses

import keras
import tensorflow as tf

from kzoo.layers.cell import RecurrentCell, check_implementation, check_positive_int, dense, \
    get_activation, in_compute_dtype, with_cell_args
from kzoo.layers.cudnn import keras_rnn_module
from kzoo.layers.recurrent import Recurrent, check_use_cudnn
from kzoo.layers.step_gradient import (EngineStep, StepGradient, kernel_gradient, sigmoid_grad,
                                       standard_activations, tanh_grad)


@keras.saving.register_keras_serializable(package="kzoo")
@with_cell_args
class LSTMCell(RecurrentCell):
    """LSTM cell; with default options weight for weight ``keras.layers.LSTMCell``.

    Equations (σ the recurrent activation, tanh the activation; gate order i, f, c, o in
    ``kernel``/``recurrent_kernel``/``bias``)::

        i = σ(x W_i + h U_i + b_i [+ p_i ⊙ c]),   f = σ(x W_f + h U_f + b_f [+ p_f ⊙ c])
        c' = f ⊙ c + i ⊙ tanh(x W_c + h U_c + b_c)
        o = σ(x W_o + h U_o + b_o [+ p_o ⊙ c']),   h' = o ⊙ tanh(c')   [then h' P]

    The bracketed terms are the variants: ``peephole`` adds the ``p_*`` terms, ``proj_units``
    the projection ``P``; ``use_forget_gate=False`` is the original ``c' = c + i ⊙ c̃`` (gates
    i, c, o); ``layer_norm`` normalizes ``x W``, ``h U`` and ``c'`` (TensorFlow Addons'
    ``LayerNormLSTMCell``).

    State ``[h, c]``: ``h`` has ``proj_units`` (or ``units``) features, ``c`` has ``units``.

    Args:
      units: positive int, the size of ``c`` (and of ``h`` without ``proj_units``).
      activation: of the candidate and of ``c'``; default ``"tanh"``.
      recurrent_activation: of the gates; default ``"sigmoid"``.
      use_forget_gate: False is the original constant error carousel ``c' = c + i ⊙ c̃``.
      unit_forget_bias: the forget gate's bias starts at 1.
      peephole: the gates also see ``c`` (``i``, ``f``) and ``c'`` (``o``).
      layer_norm: normalize ``x W``, ``h U`` and ``c'``.
      norm_epsilon: the layer norms' epsilon.
      proj_units: project ``h'`` to this many features (PyTorch's ``proj_size``).
      implementation: 0, 1 or 2, accepted as Keras takes it (Keras 3 picks between one fused
        matmul and four; kzoo always projects all gates in one matmul, with equal results).
      **kwargs: the arguments every cell shares (:class:`kzoo.layers.RecurrentCell`):
        {cell_args}

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.LSTMCell(3)
    output, (h, c) = cell(tf.zeros((2, 4)), [tf.zeros((2, 3)), tf.zeros((2, 3))])
    ```
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_forget_gate=True, unit_forget_bias=True, peephole=False, layer_norm=False,
                 norm_epsilon=1e-3, proj_units=None, implementation=2, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        name = type(self).__name__
        self.implementation = check_implementation(name, implementation)
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

    def _is_variant(self):
        return not self.use_forget_gate or self.peephole or self.layer_norm or self.proj_units

    def engine_step(self, recurrent_mask=None):
        if recurrent_mask is not None or not standard_activations(self) or self._is_variant():
            return None
        projection = [self.kernel] + ([self.bias] if self.use_bias else [])
        return EngineStep(LSTMStepGradient(), [self.recurrent_kernel], projection)

    def cudnn_kernel(self):
        if self._is_variant():
            raise NotImplementedError(
                "LSTM variant (no forget gate, peephole, layer norm or projection)")
        keras_lstm = keras_rnn_module().lstm

        def kernel(sequences, states, mask, go_backwards):
            return keras_lstm(sequences, states[0], states[1], mask, kernel=self.kernel,
                              recurrent_kernel=self.recurrent_kernel, bias=self.bias,
                              activation=self.activation,
                              recurrent_activation=self.recurrent_activation,
                              return_sequences=True, go_backwards=go_backwards)
        return kernel

    def get_config(self):
        config = {
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_forget_gate": self.use_forget_gate,
            "unit_forget_bias": self.unit_forget_bias,
            "peephole": self.peephole,
            "layer_norm": self.layer_norm,
            "norm_epsilon": self.norm_epsilon,
            "proj_units": self.proj_units,
            "implementation": self.implementation,
        }
        return {**super().get_config(), **config}


@dataclasses.dataclass(frozen=True)
class LSTMStepGradient(StepGradient):
    """The standard LSTM step (forget gate, tanh and sigmoid) and its derivatives.

    Forward: ``z = x + h R``; ``i, f, o = σ(z_i, z_f, z_o)``, ``g = tanh(z_c)``;
    ``c' = f c + i g``; ``h' = o tanh(c')``. Backward, from ``d_h'`` and ``d_c'``:
    ``d_c = d_c' + (1 - tanh²c') o d_h'``; ``d_z = [d_c g σ'(i), d_c c σ'(f), d_c i tanh'(g),
    d_h' tanh(c') σ'(o)]``; ``d_h = d_z Rᵀ``, ``d_c_prev = d_c f``.
    """

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
        d_c = d_c + tanh_grad(tanh_c, d_h * o)
        d_z = tf.concat([sigmoid_grad(i, d_c * g), sigmoid_grad(f, d_c * c),
                         tanh_grad(g, d_c * i), sigmoid_grad(o, d_h * tanh_c)], axis=-1)
        d_h_prev = tf.matmul(d_z, kernel_t)
        return d_z, [d_h_prev, d_c * f], d_z

    def weight_gradients(self, h_prev, d_recurrent, weights):
        return [kernel_gradient(h_prev, d_recurrent)]


@keras.saving.register_keras_serializable(package="kzoo")
class LSTM(Recurrent):
    """LSTM over a sequence; the arguments of ``keras.layers.LSTM`` plus the cell's variants.

    Args:
      units: positive int, the size of the cell state.
      use_cudnn: ``"auto"`` (default) runs Keras' cuDNN kernel where a GPU is visible and the
        configuration allows; True raises a ``ValueError`` at call time where it cannot run
        (as Keras does; an export still traces the portable loop); False never uses it.
      **kwargs: the cell's (:class:`LSTMCell`) and the layer's
        (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, features)``, floating point.
      initial_state: ``[h, c]``; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ``h`` of the last step, or every step's ``(batch, time, units)`` with
      ``return_sequences``; then with ``return_state`` the final ``h`` and ``c``.

    Raises:
      ValueError: as :class:`kzoo.layers.Recurrent` (input rank, mask shape, initial states).

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.LSTM(8, return_state=True)
    output, h, c = layer(tf.zeros((2, 5, 4)))       # (2, 8) each
    ```
    """

    def __init__(self, units, use_cudnn="auto", **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = LSTMCell(units, dtype=layer_kwargs.get("dtype"), name="lstm_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
        self.use_cudnn = check_use_cudnn(type(self).__name__, use_cudnn)

    def get_config(self):
        return {**super().get_config(), "use_cudnn": self.use_cudnn}
