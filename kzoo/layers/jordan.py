"""Jordan RNN (output recurrence): the previous output, not the hidden state, is fed back.

    h_t = activation(x_t W + ŷ_{t-1} U + b),   ŷ_t = output_activation(h_t V + c)

There is no hidden-to-hidden connection, so with teacher forcing (the ground-truth y_{t-1} in
place of ŷ_{t-1}) the time steps decouple and the whole sequence is computed in parallel; at
inference the layer feeds its own prediction back through the scan engine.
"""

import keras
import tensorflow as tf

from kzoo.layers.cell import RecurrentCell, check_positive_int, dense, get_activation, \
    in_compute_dtype, with_cell_args
from kzoo.layers.recurrent import Recurrent


@keras.saving.register_keras_serializable(package="kzoo")
@with_cell_args
class JordanCell(RecurrentCell):
    """Jordan cell (output recurrence): the previous output, not a hidden state, is fed back.

    Equations::

        h_t = activation(x_t W + ŷ_{t-1} U + b),   ŷ_t = output_activation(h_t V + c)

    Weights: ``kernel`` W (input_dim, units), ``recurrent_kernel`` U (output_units, units),
    ``bias`` b (units,), ``output_kernel`` V (units, output_units), ``output_bias`` c
    (output_units,). Its state is its previous output ``[ŷ]``.

    Args:
      units: positive int, the size of the hidden layer ``h``.
      output_units: positive int, the size of the output ŷ (and of the state).
      output_activation: the activation of ŷ; default ``"softmax"``.
      **kwargs: the arguments every cell shares (:class:`kzoo.layers.RecurrentCell`):
        {cell_args}

    Call arguments:
      inputs: ``(batch, features)``, the input of one step.
      states: ``[ŷ]`` of the previous step.
      training: apply dropout; default False.

    Returns:
      ``(ŷ, [ŷ])``.

    Raises:
      ValueError: a ``units`` or ``output_units`` that is not a positive int.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.JordanCell(8, output_units=3)
    y, (state,) = cell(tf.zeros((2, 4)), [tf.zeros((2, 3))])    # y (2, 3), rows sum to 1
    ```
    """

    def __init__(self, units, output_units, output_activation="softmax", **kwargs):
        super().__init__(units, **kwargs)
        name = type(self).__name__
        self.output_units = check_positive_int(name, "output_units", output_units)
        self.output_activation = get_activation(name, "output_activation", output_activation)

    @property
    def state_size(self):
        return [self.output_units]

    def build(self, input_shape):
        self.input_features = input_shape[-1]
        self.kernel = self.add_kernel("kernel", (input_shape[-1], self.units), "kernel")
        self.recurrent_kernel = self.add_kernel(
            "recurrent_kernel", (self.output_units, self.units), "recurrent")
        self.bias = self.add_kernel("bias", (self.units,), "bias") if self.use_bias else None
        self.output_kernel = self.add_kernel("output_kernel", (self.units, self.output_units),
                                             "kernel")
        self.output_bias = self.add_kernel("output_bias", (self.output_units,), "bias") \
            if self.use_bias else None

    @in_compute_dtype
    def project_inputs(self, inputs):
        z = dense(inputs, self.kernel)
        return z + self.bias if self.use_bias else z

    def emit(self, projected, previous_outputs):
        """ŷ from projected inputs and the fed-back previous outputs (any leading axes)."""
        h = self.activation(projected + dense(previous_outputs, self.recurrent_kernel))
        y = dense(h, self.output_kernel)
        return self.output_activation(y + self.output_bias if self.use_bias else y)

    @in_compute_dtype
    def step(self, projected, states, recurrent_mask=None):
        previous = states[0]
        if recurrent_mask is not None:
            previous = previous * recurrent_mask
        y = self.emit(projected, previous)
        return y, [y]

    def get_config(self):
        config = {
            "output_units": self.output_units,
            "output_activation": keras.saving.serialize_keras_object(self.output_activation),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="kzoo")
class Jordan(Recurrent):
    """Jordan RNN over a sequence (the equations of :class:`JordanCell`).

    With ``teacher_outputs`` (teacher forcing), step t is fed the ground-truth y_{t-1} instead
    of its own prediction, so the steps decouple and all of them run in parallel.

    Args:
      units: positive int, the size of the hidden layer.
      output_units: positive int, the size of the output ŷ.
      **kwargs: the cell's (:class:`JordanCell`: ``output_activation``, ``activation``...) and
        the layer's (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, features)``, floating point.
      teacher_outputs: ``(batch, time, output_units)``, the ground-truth y_1..y_T; step t is
        fed y_{t-1} (the initial state at t = 1) and masked steps emit zeros. None (default)
        feeds back the predictions.
      initial_state: ŷ_0, ``(batch, output_units)``; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ŷ of the last step, or every step's ``(batch, time, output_units)`` with
      ``return_sequences``; then with ``return_state`` the final ŷ.

    Raises:
      ValueError: ``teacher_outputs`` not of shape (batch, time, output_units), and as
        :class:`kzoo.layers.Recurrent`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.Jordan(8, output_units=3, return_sequences=True)
    x, y = tf.zeros((2, 5, 4)), tf.one_hot([[0, 1, 2, 1, 0]] * 2, 3)
    teacher_forced = layer(x, teacher_outputs=y)     # (2, 5, 3), all steps at once
    free_running = layer(x)                          # (2, 5, 3), step by step
    ```
    """

    def __init__(self, units, output_units, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = JordanCell(units, output_units, dtype=layer_kwargs.get("dtype"),
                          name="jordan_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)

    def call(self, sequences, teacher_outputs=None, initial_state=None, mask=None,
             training=False):
        if teacher_outputs is None:
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)
        self._check_dtype(sequences)
        self._check_shape(sequences.shape)
        teacher = tf.cast(teacher_outputs, self.cell.compute_dtype)
        if teacher.shape.rank != 3 or (teacher.shape[-1] is not None
                                        and teacher.shape[-1] != self.cell.output_units):
            raise ValueError(f"{self._describe()} expects teacher_outputs of shape (batch, time, "
                             f"{self.cell.output_units}), got {tuple(teacher.shape)}")
        mask = self._check_mask(sequences, mask)
        sequences = tf.cast(sequences, self.cell.compute_dtype)
        initial = self._initial_states(sequences, initial_state)[0]
        if self.go_backwards:
            sequences, teacher = tf.reverse(sequences, [1]), tf.reverse(teacher, [1])
            mask = None if mask is None else tf.reverse(mask, [1])
        previous = tf.concat([initial[:, None], teacher[:, :-1]], axis=1)
        outputs = self.cell.emit(self.cell.project_inputs(sequences), previous)
        if mask is None:
            last = outputs[:, -1]
        else:
            outputs = tf.where(mask[..., None], outputs, tf.zeros_like(outputs))
            # The state after the last valid step (the initial state for an empty row).
            time = tf.shape(mask)[1]
            last_index = time - 1 - tf.argmax(tf.cast(tf.reverse(mask, [1]), tf.int32), 1,
                                              output_type=tf.int32)
            last = tf.gather(outputs, last_index, batch_dims=1)
            last = tf.where(tf.reduce_any(mask, 1)[:, None], last, initial)
        output = outputs if self.return_sequences else last
        if self.return_state:
            return [output, last]
        return output
