"""An RNN cell that wraps a kzoo cell with attention over a memory (tfa.seq2seq.AttentionWrapper).

One step, with the previous attention vector a_{t-1} fed back into the input (input feeding,
Luong et al. 2015) and the cell output as the query (the tfa/GNMT form, for every mechanism):

    o_t, s_t    = cell([x_t; a_{t-1}], s_{t-1})
    c_t, α_t    = attention(o_t, memory, mask, keys[, previous_alignment=α_{t-1}])
    a_t         = tanh(W_a [o_t; c_t])        (with ``attention_layer_size``; else a_t = c_t)
    output      = a_t  (``output_attention=True``)  or  o_t

State: ``[*cell_states, a, α]``. The memory (encoder outputs, (B, Ts, d_m)) is not part of the
state: pass it to :meth:`AttentionWrapper.step` (what the seq2seq models do), or store it with
:meth:`setup_memory` and run the wrapper in ``keras.layers.RNN`` / any code that calls
``cell(inputs, states)``. :meth:`unroll` runs a whole sequence through the scan engine and
returns the alignment history (B, T, Ts) too.
"""

import keras
import tensorflow as tf

from kzoo.layers.attention import BaseAttention, MonotonicAttention
from kzoo.layers.cell import RecurrentCell, check_positive_int, get_activation, \
    in_compute_dtype
from kzoo.layers.dense import Dense
from kzoo.layers.scan import scan


@keras.saving.register_keras_serializable(package="kzoo")
class AttentionWrapper(keras.layers.Layer):
    """A kzoo cell with attention over a memory, as ``tfa.seq2seq.AttentionWrapper``.

    One step, with the previous attention vector fed back into the input (input feeding) and
    the cell output as the query::

        o_t, s_t = cell([x_t; a_{t-1}], s_{t-1})
        c_t, α_t = attention(o_t, memory, mask, keys[, previous_alignment=α_{t-1}])
        a_t      = tanh(W_a [o_t; c_t])     (with attention_layer_size; else a_t = c_t)
        output   = a_t (output_attention=True) or o_t

    State ``[*cell_states, a, α]``. The memory is passed to :meth:`step` / :meth:`unroll`, or
    stored with :meth:`setup_memory` for ``cell(inputs, states)``-style use.

    Args:
      cell: a kzoo ``RecurrentCell`` (``LSTMCell``, ``GRUCell``, ``SimpleRNNCell``...).
      attention: a kzoo attention layer (Bahdanau, Luong or their monotonic forms).
      attention_layer_size: positive int, the size of a_t = tanh(W_a [o_t; c_t]); None (the
        default) uses the context itself, a_t = c_t.
      attention_activation: the activation of W_a [o_t; c_t]; default ``"tanh"``.
      output_attention: output a_t (default) rather than the cell output o_t.
      input_feeding: feed a_{t-1} into the cell's input; default True.
      memory_dim: the memory's feature size, so the wrapper can build before it sees a
        memory; None (default) takes it from the first memory.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: ``(batch, features)``, one step's input.
      states: ``[*cell_states, a, α]`` (see :meth:`get_initial_state`).
      training: apply the cell's dropout.

    Returns:
      ``(output, new_states)``; :meth:`unroll` returns ``(outputs, alignment_history,
      final_states)``.

    Raises:
      TypeError: a ``cell`` that is not a kzoo ``RecurrentCell`` or an ``attention`` that is
        not a kzoo attention layer.
      ValueError: an ``attention_layer_size`` or ``memory_dim`` that is not a positive int.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    wrapper = kzoo.layers.AttentionWrapper(kzoo.layers.GRUCell(4),
                                           kzoo.layers.LuongAttention("general"))
    memory = tf.random.normal((2, 5, 3))             # encoder outputs
    outputs, alignments, states = wrapper.unroll(tf.zeros((2, 6, 2)), memory)
    # outputs (2, 6, 3), alignments (2, 6, 5)
    ```
    """

    def __init__(self, cell, attention, attention_layer_size=None, attention_activation="tanh",
                 output_attention=True, input_feeding=True, memory_dim=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if isinstance(attention, dict):
            attention = keras.saving.deserialize_keras_object(attention)
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"AttentionWrapper: `cell` must be a kzoo RecurrentCell, got "
                            f"{type(cell).__name__}")
        if not isinstance(attention, BaseAttention):
            raise TypeError(f"AttentionWrapper: `attention` must be a kzoo attention layer "
                            f"(BahdanauAttention, LuongAttention...), got "
                            f"{type(attention).__name__}")
        self.cell = cell
        self.attention = attention
        self.attention_layer_size = None if attention_layer_size is None else \
            check_positive_int("AttentionWrapper", "attention_layer_size", attention_layer_size)
        self.attention_activation = get_activation("AttentionWrapper", "attention_activation",
                                                   attention_activation)
        self.output_attention = bool(output_attention)
        self.input_feeding = bool(input_feeding)
        self.memory_dim = None if memory_dim is None else \
            check_positive_int("AttentionWrapper", "memory_dim", memory_dim)
        self.attention_layer = None
        if self.attention_layer_size is not None:
            self.attention_layer = Dense(
                self.attention_layer_size, use_bias=False, activation=self.attention_activation,
                name="attention_layer")
        self.monotonic = isinstance(attention, MonotonicAttention)
        self._memory = self._keys = self._memory_mask = None

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def cell_output_size(self):
        return self.cell.state_size[0]

    @property
    def attention_size(self):
        if self.attention_layer_size is not None:
            return self.attention_layer_size
        if self.memory_dim is None:
            raise ValueError("AttentionWrapper: the attention size is the memory's feature size "
                             "when `attention_layer_size` is None; give `memory_dim` or call "
                             "`setup_memory` first")
        return self.memory_dim

    @property
    def state_size(self):
        # The alignments have the (dynamic) length of the memory.
        return [*self.cell.state_size, self.attention_size, None]

    @property
    def output_size(self):
        return self.attention_size if self.output_attention else self.cell_output_size

    def build(self, input_shape):
        if self.memory_dim is None:
            raise ValueError("AttentionWrapper: cannot build without the memory's feature size; "
                             "give `memory_dim` or call `setup_memory(memory)` first")
        features = int(input_shape[-1])
        cell_input = features + (self.attention_size if self.input_feeding else 0)
        if not self.cell.built:
            self.cell.build((None, cell_input))
        if not self.attention.built:
            self.attention.build((None, self.cell_output_size), (None, None, self.memory_dim))
        if self.attention_layer is not None and not self.attention_layer.built:
            self.attention_layer.build((None, self.cell_output_size + self.memory_dim))
        self.input_features = features
        self.built = True

    # -- memory ---------------------------------------------------------------------------------
    @in_compute_dtype
    def project_memory(self, memory):
        """``attention.project_keys(memory)``: computed once per source, reused every step."""
        return self.attention.project_keys(memory)

    @in_compute_dtype
    def setup_memory(self, memory, memory_mask=None):
        """Store the memory (and its mask) that :meth:`call` attends to (tfa's
        ``attention_mechanism.setup_memory``). Needed only for ``keras.layers.RNN``-style use."""
        memory = tf.convert_to_tensor(memory)
        if self.memory_dim is None:
            self.memory_dim = int(memory.shape[-1])
        elif memory.shape[-1] != self.memory_dim:
            raise ValueError(f"AttentionWrapper: built for memory_dim={self.memory_dim}, got a "
                             f"memory of shape {tuple(memory.shape)}")
        if not self.attention.built:
            self.attention.build((None, self.cell_output_size), (None, None, self.memory_dim))
        self._memory = memory
        self._memory_mask = None if memory_mask is None else tf.cast(memory_mask, tf.bool)
        self._keys = self.project_memory(memory)

    def initial_alignments(self, memory):
        """α_0: zeros, or for monotonic attention all mass on the first memory position."""
        zeros = tf.zeros_like(memory[:, :, 0])
        if self.monotonic:
            return zeros + tf.one_hot(0, tf.shape(memory)[1], dtype=zeros.dtype)
        return zeros

    @in_compute_dtype
    def get_initial_state(self, batch_size=None, cell_state=None, memory=None):
        """``[*cell_state, a_0 = 0, α_0]``; ``cell_state`` defaults to the cell's zeros (an
        encoder's final state is the usual choice), ``memory`` to the one of ``setup_memory``."""
        memory = self._memory if memory is None else memory
        if memory is None:
            raise ValueError("AttentionWrapper.get_initial_state needs a memory: pass `memory=` "
                             "or call `setup_memory` first")
        batch = tf.shape(memory)[0]
        if cell_state is None:
            cell_state = self.cell.get_initial_state(batch)
        attention = tf.zeros([batch, self.attention_size], dtype=self.compute_dtype)
        return [*cell_state, attention, self.initial_alignments(memory)]

    # -- one step -------------------------------------------------------------------------------
    @in_compute_dtype
    def step(self, inputs, states, memory, keys=None, memory_mask=None, training=None):
        """One decoder step: ``(output, new_states, alignments)`` (see the module docstring)."""
        if not self.built:
            self.memory_dim = self.memory_dim or int(memory.shape[-1])
            self.build(inputs.shape)
        previous_attention = states[len(self.cell.state_size)]
        x = tf.concat([inputs, previous_attention], -1) if self.input_feeding else inputs
        if keys is None:
            keys = self.project_memory(memory)
        return self.step_projected(self.cell.project_inputs(x), states, memory, keys,
                                   memory_mask, training)

    @in_compute_dtype
    def step_projected(self, projected, states, memory, keys, memory_mask=None, training=None):
        """:meth:`step` from the cell's already projected input (``keys`` projected too), for
        decoders that look the projection up in a table."""
        n_cell = len(self.cell.state_size)
        cell_output, new_cell_states = self.cell.step(projected, list(states[:n_cell]))
        extra = {"previous_alignment": states[n_cell + 1]} if self.monotonic else {}
        context, alignments = self.attention(cell_output, memory, mask=memory_mask, keys=keys,
                                             training=training, **extra)
        if self.attention_layer is not None:
            attention = self.attention_layer(tf.concat([cell_output, context], -1))
        else:
            attention = context
        output = attention if self.output_attention else cell_output
        return output, [*new_cell_states, attention, alignments], alignments

    def call(self, inputs, states, training=None):
        """The ``keras.layers.RNN`` cell protocol, on the memory of :meth:`setup_memory`."""
        if self._memory is None:
            raise ValueError("AttentionWrapper: call `setup_memory(memory, memory_mask)` before "
                             "running the wrapper as a cell (or use `step(..., memory=...)`)")
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        output, new_states, _ = self.step(inputs, states, self._memory, self._keys,
                                          self._memory_mask, training=training)
        return output, new_states

    @in_compute_dtype
    def unroll(self, inputs, memory, memory_mask=None, initial_state=None, mask=None,
               training=None):
        """Run the wrapper over ``inputs`` (B, T, F) with teacher forcing.

        Returns ``(outputs (B, T, output_size), alignment_history (B, T, Ts), final_states)``
        (tfa's ``alignment_history=True`` + ``final_state.alignment_history.stack()``). ``mask``
        (B, T) carries the state through masked steps, as every kzoo sequence layer.
        """
        inputs = tf.convert_to_tensor(inputs)
        memory = tf.convert_to_tensor(memory)
        if not self.built:
            self.memory_dim = self.memory_dim or int(memory.shape[-1])
            self.build(inputs.shape)
        keys = self.project_memory(memory)
        memory_mask = None if memory_mask is None else tf.cast(memory_mask, tf.bool)
        states = initial_state if initial_state is not None else self.get_initial_state(
            memory=memory)
        batch = tf.shape(inputs)[0]
        width = self.output_size
        # The scan engine emits states[0]; emit [output; alignments] packed in one tensor.
        packed = tf.zeros([batch, width + tf.shape(memory)[1]], dtype=self.compute_dtype)

        def scan_step(x_t, carry):
            output, new_states, alignments = self.step(x_t, carry[1:], memory, keys,
                                                       memory_mask, training=training)
            emitted = tf.concat([output, alignments], -1)
            return emitted, [emitted, *new_states]

        _, packed_outputs, final = scan(scan_step, inputs, [packed, *states], mask=mask)
        return packed_outputs[..., :width], packed_outputs[..., width:], final[1:]

    def get_config(self):
        s = keras.saving.serialize_keras_object
        config = {
            "cell": s(self.cell),
            "attention": s(self.attention),
            "attention_layer_size": self.attention_layer_size,
            "attention_activation": s(self.attention_activation),
            "output_attention": self.output_attention,
            "input_feeding": self.input_feeding,
            "memory_dim": self.memory_dim,
        }
        return {**super().get_config(), **config}
