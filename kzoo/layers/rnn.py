"""``kzoo.layers.RNN(cell)``: ``keras.layers.RNN``'s signature, run on the scan engine.

Which cells run how:

* a kzoo cell (:class:`kzoo.layers.RecurrentCell`) runs as in :class:`kzoo.layers.Recurrent`:
  all steps' inputs projected in one matmul, the cell's engine step and cuDNN kernel;
* Keras' own ``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell`` (those exact classes) become kzoo's
  cell of the same name, built from their config and carrying their weights when built;
* a list of cells or ``keras.layers.StackedRNNCells`` is a stack whose cells are mapped as above;
  the stack steps on the scan engine's generic loop, each cell as its ``call``;
* any other cell (a custom Keras cell: ``call(inputs, states)`` and ``state_size``) steps
  unchanged on that generic loop, so the loop exports to builtin TFLite ops like kzoo's own
  (if the cell's ops do).
"""

import keras
import tensorflow as tf
from keras.src.layers.rnn.rnn import RNN as KerasRNN

from kzoo.layers.cell import RecurrentCell
from kzoo.layers.gru import GRUCell
from kzoo.layers.lstm import LSTMCell
from kzoo.layers.recurrent import Recurrent
from kzoo.layers.scan import scan
from kzoo.layers.simple_rnn import SimpleRNNCell

# Keras' standard cells and kzoo's cell with the same equations, weights and config.
KERAS_CELLS = {
    keras.layers.SimpleRNNCell: SimpleRNNCell,
    keras.layers.LSTMCell: LSTMCell,
    keras.layers.GRUCell: GRUCell,
}


def to_kzoo_cell(cell):
    """``cell`` with each Keras standard cell in it replaced by kzoo's, weights included.

    Args:
      cell: a kzoo cell, a Keras ``SimpleRNNCell``/``LSTMCell``/``GRUCell``, a list of cells
        or ``keras.layers.StackedRNNCells``, or any other Keras cell (returned unchanged).

    Returns:
      A kzoo :class:`~kzoo.layers.RecurrentCell`, a ``keras.layers.StackedRNNCells`` of mapped
      cells, or the custom cell.

    Example:

    ```python
    import keras
    from kzoo.layers.rnn import to_kzoo_cell

    to_kzoo_cell(keras.layers.GRUCell(4))         # a kzoo.layers.GRUCell
    ```
    """
    if isinstance(cell, RecurrentCell):
        return cell
    if isinstance(cell, (list, tuple)):
        return keras.layers.StackedRNNCells([to_kzoo_cell(c) for c in cell])
    if type(cell) is keras.layers.StackedRNNCells:
        return keras.layers.StackedRNNCells([to_kzoo_cell(c) for c in cell.cells],
                                            name=cell.name, dtype=cell.dtype_policy)
    kzoo_class = KERAS_CELLS.get(type(cell))
    if kzoo_class is None:
        return cell
    kzoo_cell = kzoo_class.from_config(cell.get_config())
    if cell.built:
        kzoo_cell.build((None, cell.kernel.shape[0]))
        kzoo_cell.set_weights(cell.get_weights())
    return kzoo_cell


@keras.saving.register_keras_serializable(package="kzoo")
class RNN(Recurrent):
    """``keras.layers.RNN`` on kzoo's scan engine, over kzoo's cells and Keras' own.

    A kzoo cell runs as in :class:`kzoo.layers.Recurrent` (all steps' inputs projected in one
    matmul, the engine's own gradient, cuDNN where Keras would use it). Keras'
    ``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell`` are replaced by kzoo's cell of the same name
    with the same config and weights, so the outputs are Keras'. A list of cells or a
    ``keras.layers.StackedRNNCells`` runs its cells (mapped the same way) one after the other at
    each step, and any other cell (a custom Keras cell with ``call(inputs, states)`` and
    ``state_size``) runs unchanged, both on the scan engine's generic loop, which also exports
    to builtin TFLite ops where the cell's own ops are builtins.

    Args:
      cell: a kzoo cell, a Keras cell, a list of cells, or ``keras.layers.StackedRNNCells``.
      return_sequences: return every step's output ``(batch, time, ...)``, not the last.
      return_state: also return the final states (for a stack, one entry per cell).
      go_backwards: process the sequence in reverse (outputs in processing order, as Keras).
      stateful: the final states of a batch are the initial states of the next.
      unroll: accepted and kept, as Keras takes it; the scan engine's loop computes the same
        result (an undefined time axis raises, as in Keras).
      zero_output_for_mask: masked steps output zeros instead of the previous output.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      sequences: ``(batch, time, features)``; integer and bool inputs are cast, as in Keras.
      initial_state: the cell's states (nested per cell for a stack); zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      The output (last, or every step's), then with ``return_state`` the final states.

    Raises:
      ValueError: a cell without ``call`` or ``state_size``, and as
        :class:`kzoo.layers.Recurrent`.

    Example:

    ```python
    import keras
    import numpy as np
    import kzoo

    x = np.ones((2, 5, 3), "float32")
    cells = [keras.layers.LSTMCell(4), keras.layers.GRUCell(2)]
    outputs = kzoo.layers.RNN(cells, return_sequences=True)(x)     # (2, 5, 2)
    h = kzoo.layers.RNN(kzoo.layers.GRUCell(4))(x)                  # (2, 4)
    ```
    """

    # Keras' own dropout-mask preparation for a cell or a stack: the masks are drawn once per
    # sequence before the loop and read by every step.
    _maybe_config_dropout_masks = KerasRNN._maybe_config_dropout_masks
    _maybe_reset_dropout_masks = KerasRNN._maybe_reset_dropout_masks

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(to_kzoo_cell(cell), return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards,
                         stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, **kwargs)

    def _check_cell(self, cell):
        for attribute in ("call", "state_size"):
            if attribute not in dir(cell):
                raise ValueError(f"{type(self).__name__}: `cell` must have a `{attribute}` "
                                 f"(a recurrent cell), got {type(cell).__name__}")

    @property
    def _generic(self):
        """The cell steps as its ``call`` on the generic loop (not a kzoo cell)."""
        return not isinstance(self.cell, RecurrentCell)

    @property
    def _rank(self):
        return None if self._generic else super()._rank

    # -- the cell's states, as keras.layers.RNN holds them ----------------------------------------
    def _state_sizes(self):
        sizes = self.cell.state_size
        return [sizes] if isinstance(sizes, int) else list(sizes)

    def _output_size(self):
        size = getattr(self.cell, "output_size", None)
        if size is None:
            size = tf.nest.flatten(self._state_sizes()[0])[0]
        return size

    def _zero_states(self, batch):
        """The cell's initial states as ``keras.layers.RNN`` makes them (a list, nested per
        cell for a stack)."""
        make = getattr(self.cell, "get_initial_state", None)
        if make is None:
            return [tf.zeros((batch, size), dtype=self.cell.compute_dtype)
                    for size in tf.nest.flatten(self._state_sizes())]
        states = make(batch_size=batch)
        return list(states) if tf.nest.is_nested(states) else [states]

    def get_initial_state(self, batch_size):
        """The zero states of a batch, as ``keras.layers.RNN.get_initial_state`` gives them."""
        return self._zero_states(batch_size)

    def build(self, sequences_shape, initial_state_shape=None):
        if not self._generic:
            return super().build(sequences_shape, initial_state_shape)
        self._check_shape(sequences_shape)
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if isinstance(self.cell, keras.layers.Layer) and not self.cell.built:
            self.cell.build(step_shape)
            self.cell.built = True
        if self.stateful:
            self._add_state_weights(
                sequences_shape, lambda batch: tf.nest.flatten(self._zero_states(batch)))

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        if not self._generic:
            return super().compute_output_shape(sequences_shape, initial_state_shape)
        batch, time = sequences_shape[0], sequences_shape[1]
        output = (batch, time, self._output_size()) if self.return_sequences \
            else (batch, self._output_size())
        if not self.return_state:
            return output
        # As Keras writes them: one shape per int, a list per cell of a stack (a kzoo cell's
        # one-state list [units] is Keras' int units).
        states = [(batch, s) if isinstance(s, int) else
                  (batch, s[0]) if len(s) == 1 else [(batch, d) for d in s]
                  for s in self._state_sizes()]
        return (output, *states)

    def compute_mask(self, sequences, mask=None):
        if not self._generic:
            return super().compute_mask(sequences, mask)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self._state_sizes())
        return output_mask

    # -- the forward pass -----------------------------------------------------------------------
    def call(self, sequences, initial_state=None, mask=None, training=False):
        if not self._generic:
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)
        self._check_dtype(sequences)
        self._check_shape(sequences.shape)
        self._check_batch(sequences)
        cell = self.cell
        dtype = cell.compute_dtype
        sequences = tf.cast(sequences, dtype)
        mask = self._check_mask(sequences, mask)
        structure = self._zero_states(tf.shape(sequences)[0])
        if initial_state is not None:
            states = [tf.cast(s, dtype) for s in tf.nest.flatten(initial_state)]
            expected = len(tf.nest.flatten(structure))
            if len(states) != expected:
                raise ValueError(f"{self._describe()} expects {expected} initial state "
                                 f"tensor(s), got {len(states)}")
        elif self.stateful:
            states = [tf.convert_to_tensor(v) for v in self.states]
        else:
            states = tf.nest.flatten(structure)
        self._maybe_config_dropout_masks(cell, sequences[:, 0],
                                         tf.nest.pack_sequence_as(structure, states))
        cell_kwargs = {"training": training} if getattr(
            cell, "_call_has_training_arg", False) else {}

        def step(x_t, step_states):
            # The output rides in front of the cell's states: the engine carries it through
            # masked steps as it carries a kzoo cell's output (its first state).
            output, new_states = cell(x_t, tf.nest.pack_sequence_as(structure, step_states[1:]),
                                      **cell_kwargs)
            new_states = tf.nest.flatten(new_states)
            output = tf.cast(output, dtype)
            return output, [output, *[tf.cast(s, dtype) for s in new_states]]

        zero_output = tf.zeros(tf.concat([tf.shape(sequences)[:1],
                                          tf.constant([self._output_size()])], 0), dtype)
        last_output, outputs, final_states = scan(
            step, sequences, [zero_output, *states], mask=mask, go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask, output_is_state=True)
        self._maybe_reset_dropout_masks(cell)
        final_states = final_states[1:]
        if self.stateful:
            for variable, value in zip(self.states, final_states):
                variable.assign(value)
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return self._in_layer_dtype(
                [output, *tf.nest.pack_sequence_as(structure, final_states)])
        return self._in_layer_dtype(output)

    # -- config ---------------------------------------------------------------------------------
    def get_config(self):
        config = {k: getattr(self, k) for k in ("return_sequences", "return_state",
                                                "go_backwards", "stateful", "unroll",
                                                "zero_output_for_mask")}
        config["cell"] = keras.saving.serialize_keras_object(self.cell)
        return {**keras.layers.Layer.get_config(self), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cell = keras.saving.deserialize_keras_object(config.pop("cell"),
                                                     custom_objects=custom_objects)
        return cls(cell, **config)
