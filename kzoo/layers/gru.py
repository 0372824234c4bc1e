"""GRU with update gate z and reset (relevance) gate r, in Keras' form:

    z = σ(x W_z + h U_z + b_z),  r = σ(x W_r + h U_r + b_r),
    h̃ = tanh(x W_h + (r ⊙ h) U_h + b_h)        (reset_after=False, the original form)
    h̃ = tanh(x W_h + r ⊙ (h U_h + b'_h))       (reset_after=True, the cuDNN form, Keras' default)
    h' = z ⊙ h + (1 - z) ⊙ h̃

The course writes the same cell as c' = Γ_u ⊙ c̃ + (1 - Γ_u) ⊙ c with Γ_u = 1 - z. Gate order
z, r, h; ``bias`` is (2, 3·units) with ``reset_after`` (input bias, recurrent bias).

Beside the cell, :class:`GRUStepGradient` is the ``reset_after`` step with its hand-derived
gradient, which the scan engine runs to backpropagate through time itself.
"""

import dataclasses

import keras
import tensorflow as tf

from kzoo.layers.cell import RecurrentCell, check_implementation, dense, get_activation, \
    in_compute_dtype, with_cell_args
from kzoo.layers.cudnn import keras_rnn_module
from kzoo.layers.recurrent import Recurrent, check_use_cudnn
from kzoo.layers.step_gradient import (EngineStep, StepGradient, bias_gradient, kernel_gradient,
                                       sigmoid_grad, standard_activations, tanh_grad)


@keras.saving.register_keras_serializable(package="kzoo")
@with_cell_args
class GRUCell(RecurrentCell):
    """GRU cell, weight for weight ``keras.layers.GRUCell``.

    Equations (σ the recurrent activation, tanh the activation)::

        z = σ(x W_z + h U_z + b_z),   r = σ(x W_r + h U_r + b_r)
        h̃ = tanh(x W_h + r ⊙ (h U_h + b'_h))       (reset_after=True)
        h̃ = tanh(x W_h + (r ⊙ h) U_h + b_h)        (reset_after=False)
        h' = z ⊙ h + (1 - z) ⊙ h̃

    State ``[h]``.

    Recurrent dropout masks ``h`` wherever it enters a matmul (Keras 3.15's default
    implementation silently ignores ``recurrent_dropout``; this cell applies it).

    Args:
      units: positive int, the size of ``h``.
      activation: of the candidate; default ``"tanh"``.
      recurrent_activation: of the gates; default ``"sigmoid"``.
      reset_after: apply the reset gate after the recurrent matmul (Keras' default, the cuDNN
        form); ``bias`` is then (2, 3·units).
      implementation: 0, 1 or 2, accepted as Keras takes it (Keras 3 picks between one fused
        matmul and three; kzoo always projects all gates in one matmul, with equal results).
      **kwargs: the arguments every cell shares (:class:`kzoo.layers.RecurrentCell`):
        {cell_args}

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.GRUCell(3, reset_after=False)
    output, (h,) = cell(tf.zeros((2, 4)), [tf.zeros((2, 3))])
    ```
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, implementation=2, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.implementation = check_implementation(type(self).__name__, implementation)
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

    def engine_step(self, recurrent_mask=None):
        if recurrent_mask is not None or not standard_activations(self) or not self.reset_after:
            return None
        weights = [self.recurrent_kernel] + ([self.bias[1]] if self.use_bias else [])
        projection = [self.kernel] + ([self.bias[0]] if self.use_bias else [])
        return EngineStep(GRUStepGradient(recurrent_bias=self.use_bias), weights, projection)

    def cudnn_kernel(self):
        if not self.reset_after:
            raise NotImplementedError("GRU with reset_after=False")
        keras_gru = keras_rnn_module().gru

        def kernel(sequences, states, mask, go_backwards):
            return keras_gru(sequences, states[0], mask, kernel=self.kernel,
                             recurrent_kernel=self.recurrent_kernel, bias=self.bias,
                             activation=self.activation,
                             recurrent_activation=self.recurrent_activation,
                             return_sequences=True, go_backwards=go_backwards)
        return kernel

    def get_config(self):
        config = {
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
            "implementation": self.implementation,
        }
        return {**super().get_config(), **config}


@dataclasses.dataclass(frozen=True)
class GRUStepGradient(StepGradient):
    """Keras' ``reset_after`` GRU step and its derivatives.

    Forward: ``(r_z, r_r, r_h) = h R [+ b_r]``; ``z = σ(x_z + r_z)``, ``r = σ(x_r + r_r)``,
    ``n = tanh(x_h + r ⊙ r_h)``; ``h' = n + z ⊙ (h - n)``. Backward, from ``d_h'``:
    ``d_z = σ'(z) d_h' (h - n)``, ``d_n = tanh'(n) d_h' (1 - z)``, ``d_r = σ'(r) d_n r_h``;
    ``d_h = d_h' z + [d_z, d_r, d_n r] Rᵀ``.

    Attributes:
      recurrent_bias: the step reads ``weights[1]``, the recurrent bias ``b_r``.
    """

    recurrent_bias: bool = True
    recurrent_gradient_is_input_gradient = False

    def step(self, x_t, states, weights):
        h = states[0]
        units = weights[0].shape[0]
        inner = tf.matmul(h, weights[0])
        if self.recurrent_bias:
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
        d_z = sigmoid_grad(z, d_h * (h - n))
        d_n = tanh_grad(n, d_h - d_h * z)
        d_r = sigmoid_grad(r, d_n * r_h)
        d_inner = tf.concat([d_z, d_r, d_n * r], axis=-1)
        d_h_prev = d_h * z + tf.matmul(d_inner, kernel_t)
        return tf.concat([d_z, d_r, d_n], axis=-1), [d_h_prev], d_inner

    def weight_gradients(self, h_prev, d_recurrent, weights):
        grads = [kernel_gradient(h_prev, d_recurrent)]
        if self.recurrent_bias:
            grads.append(bias_gradient(d_recurrent))
        return grads


@keras.saving.register_keras_serializable(package="kzoo")
class GRU(Recurrent):
    """GRU over a sequence; the arguments of ``keras.layers.GRU``.

    Args:
      units: positive int, the size of the hidden state.
      use_cudnn: ``"auto"`` (default) runs Keras' cuDNN kernel where a GPU is visible and the
        configuration allows; True raises a ``ValueError`` at call time where it cannot run
        (as Keras does; an export still traces the portable loop); False never uses it.
      **kwargs: the cell's (:class:`GRUCell`) and the layer's
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

    backward = kzoo.layers.GRU(8, reset_after=False, go_backwards=True)
    backward(tf.zeros((2, 5, 4))).shape     # (2, 8): the state after reading t = 5 ... 1
    ```
    """

    def __init__(self, units, use_cudnn="auto", **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = GRUCell(units, dtype=layer_kwargs.get("dtype"), name="gru_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
        self.use_cudnn = check_use_cudnn(type(self).__name__, use_cudnn)

    def get_config(self):
        return {**super().get_config(), "use_cudnn": self.use_cudnn}
