"""An RNN cell that wraps a kzoo cell with attention over a memory (tfa.seq2seq.AttentionWrapper).

One step, with the previous attention vector a_{t-1} fed back into the input (input feeding,
Luong et al. 2015) and the cell output as the query (the tfa/GNMT form, for every mechanism):

    o_t, s_t    = cell([x_t; a_{t-1}], s_{t-1})
    c_t, α_t    = attention(o_t, memory, mask, keys[, previous_alignment=α_{t-1}])
    a_t         = tanh(W_a [o_t; c_t])        (with ``attention_layer_size``; else a_t = c_t)
    output      = a_t  (``output_attention=True``)  or  o_t

With several mechanisms (``AttentionWrapper(cell, [m1, m2])``, as tfa) each attends to the memory
with the same query o_t, a_t is the concatenation of their attention vectors, and the state holds
one alignment per mechanism.

State: ``[*cell_states, a, α]`` (``[*cell_states, a, α_1, ..., α_n]`` with n mechanisms).
The memory (encoder outputs, (B, Ts, d_m)) is not part of the
state: pass it to :meth:`AttentionWrapper.step` (what the seq2seq models do), or store it with
:meth:`setup_memory` and run the wrapper in ``keras.layers.RNN`` / any code that calls
``cell(inputs, states)``. :meth:`unroll` runs a whole sequence through the scan engine and
returns the alignment history (B, T, Ts) too.
"""

import keras
import tensorflow as tf

from kzoo.layers.attention import BaseAttention, MonotonicAttention, deserialize_callable, \
    serialize_callable
from kzoo.layers.cell import RecurrentCell, check_positive_int, get_activation, \
    in_compute_dtype
from kzoo.layers.dense import Dense
from kzoo.layers.scan import scan


@keras.saving.register_keras_serializable(package="kzoo")
class AttentionWrapper(keras.layers.Layer):
    """A kzoo cell with attention over a memory, as ``tfa.seq2seq.AttentionWrapper``.

    One step, with the previous attention vector fed back into the input (input feeding) and
    the cell output as the query::

        o_t, s_t = cell(cell_input_fn(x_t, a_{t-1}), s_{t-1})    (default [x_t; a_{t-1}])
        c_t, α_t = attention(o_t, memory, mask, keys[, previous_alignment=α_{t-1}])
        a_t      = tanh(W_a [o_t; c_t])     (with attention_layer_size; else a_t = c_t)
        output   = a_t (output_attention=True) or o_t

    With n mechanisms, c_t^k, α_t^k and a_t^k come from each, and a_t = [a_t^1; ...; a_t^n].
    State ``[*cell_states, a, α]`` (``[*cell_states, a, α^1, ..., α^n]``). The memory is passed
    to :meth:`step` / :meth:`unroll`, or stored with :meth:`setup_memory` for
    ``cell(inputs, states)``-style use; all mechanisms attend to the same memory.

    Args:
      cell: a kzoo ``RecurrentCell`` (``LSTMCell``, ``GRUCell``, ``SimpleRNNCell``...).
      attention: a kzoo attention layer (Bahdanau, Luong or their monotonic forms), or a list of
        them (tfa's list of attention mechanisms).
      attention_layer_size: positive int (a list of them, one per mechanism, with several), the
        size of a_t = tanh(W_a [o_t; c_t]); None (the default) uses the context itself,
        a_t = c_t. Not with ``attention_layer``.
      attention_activation: the activation of W_a [o_t; c_t]; default ``"tanh"``
        (tfa's layer is linear: pass None for it).
      output_attention: output a_t (default) rather than the cell output o_t.
      input_feeding: feed a_{t-1} into the cell's input; default True.
      memory_dim: the memory's feature size, so the wrapper can build before it sees a
        memory; None (default) takes it from the first memory.
      attention_layer: a Keras layer (a list of them, one per mechanism) computing a_t from
        [o_t; c_t] (tfa's ``attention_layer``), e.g. ``keras.layers.Dense(8, use_bias=False)``;
        its output size is the attention size. Not with ``attention_layer_size``.
      cell_input_fn: a callable ``(inputs, attention) -> cell inputs`` (tfa's
        ``cell_input_fn``); None (default) concatenates them (inputs alone without
        ``input_feeding``). Saved in the config only when registered with
        ``keras.saving.register_keras_serializable``.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: ``(batch, features)``, one step's input.
      states: ``[*cell_states, a, α...]`` (see :meth:`get_initial_state`).
      training: apply the cell's dropout.

    Returns:
      ``(output, new_states)``; :meth:`unroll` returns ``(outputs, alignment_history,
      final_states)``, the history a list (one per mechanism) with several mechanisms.

    Raises:
      TypeError: a ``cell`` that is not a kzoo ``RecurrentCell``, an ``attention`` that is
        not a kzoo attention layer, an ``attention_layer`` that is not a Keras layer, or a
        ``cell_input_fn`` that is not callable.
      ValueError: an ``attention_layer_size`` or ``memory_dim`` that is not a positive int,
        ``attention_layer_size`` with ``attention_layer``, ``cell_input_fn`` with
        ``input_feeding=False``, or per-mechanism lists of the wrong length.

    Example:

    ```python
    import keras
    import tensorflow as tf
    import kzoo

    wrapper = kzoo.layers.AttentionWrapper(kzoo.layers.GRUCell(4),
                                           kzoo.layers.LuongAttention("general"))
    memory = tf.random.normal((2, 5, 3))             # encoder outputs
    outputs, alignments, states = wrapper.unroll(tf.zeros((2, 6, 2)), memory)
    # outputs (2, 6, 3), alignments (2, 6, 5)

    two = kzoo.layers.AttentionWrapper(
        kzoo.layers.LSTMCell(4),
        [kzoo.layers.BahdanauAttention(4), kzoo.layers.LuongAttention("general")],
        attention_layer=[keras.layers.Dense(2), keras.layers.Dense(3)])
    outputs, (first, second), states = two.unroll(tf.zeros((2, 6, 2)), memory)
    # outputs (2, 6, 5): [a^1; a^2]; first and second (2, 6, 5)
    ```
    """

    def __init__(self, cell, attention, attention_layer_size=None, attention_activation="tanh",
                 output_attention=True, input_feeding=True, memory_dim=None,
                 attention_layer=None, cell_input_fn=None, **kwargs):
        super().__init__(**kwargs)
        where = "AttentionWrapper"
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"{where}: `cell` must be a kzoo RecurrentCell, got "
                            f"{type(cell).__name__}")
        multiple = isinstance(attention, (list, tuple))
        mechanisms = [_load(m) for m in (attention if multiple else [attention])]
        if not mechanisms:
            raise ValueError(f"{where}: `attention` is an empty list; give one attention layer "
                             f"or more")
        for mechanism in mechanisms:
            if not isinstance(mechanism, BaseAttention):
                raise TypeError(f"{where}: `attention` must be a kzoo attention layer "
                                f"(BahdanauAttention, LuongAttention...) or a list of them, got "
                                f"{type(mechanism).__name__}")
        if attention_layer_size is not None and attention_layer is not None:
            raise ValueError(f"{where}: give `attention_layer_size` or `attention_layer`, not "
                             f"both")
        sizes = _per_mechanism(where, "attention_layer_size", attention_layer_size,
                               len(mechanisms), multiple)
        layers = _per_mechanism(where, "attention_layer", attention_layer, len(mechanisms),
                                multiple)
        self.cell = cell
        self.attention = mechanisms if multiple else mechanisms[0]
        self.attention_layer_size = None if sizes is None else [
            check_positive_int(where, "attention_layer_size", size) for size in sizes]
        if self.attention_layer_size is not None and not multiple:
            self.attention_layer_size = self.attention_layer_size[0]
        self.attention_activation = get_activation(where, "attention_activation",
                                                   attention_activation)
        self.output_attention = bool(output_attention)
        self.input_feeding = bool(input_feeding)
        self.memory_dim = None if memory_dim is None else \
            check_positive_int(where, "memory_dim", memory_dim)
        cell_input_fn = deserialize_callable(where, "cell_input_fn", cell_input_fn)
        if cell_input_fn is not None:
            if not callable(cell_input_fn):
                raise TypeError(f"{where}: `cell_input_fn` must be a callable (inputs, "
                                f"attention) -> cell inputs, got {cell_input_fn!r}")
            if not self.input_feeding:
                raise ValueError(f"{where}: `cell_input_fn` decides what the cell reads; it "
                                 f"cannot be combined with input_feeding=False")
        self.cell_input_fn = cell_input_fn
        self.custom_attention_layer = layers is not None
        if layers is not None:
            layers = [_load(layer) for layer in layers]
            for layer in layers:
                if not isinstance(layer, keras.layers.Layer):
                    raise TypeError(f"{where}: `attention_layer` must be a Keras layer (or a "
                                    f"list of them), got {type(layer).__name__}")
        elif sizes is not None:
            layers = [Dense(size, use_bias=False, activation=self.attention_activation,
                            name="attention_layer" if not multiple else f"attention_layer_{i}")
                      for i, size in enumerate(sizes)]
        self.attention_layer = layers if multiple or layers is None else layers[0]
        self._memory = self._keys = self._memory_mask = None

    # -- the mechanisms -------------------------------------------------------------------------
    @property
    def mechanisms(self):
        """The attention layers, a list (of one with a single mechanism)."""
        return list(self.attention) if isinstance(self.attention, (list, tuple)) \
            else [self.attention]

    @property
    def attention_layers(self):
        """The layers computing a_t^k from [o_t; c_t^k], one per mechanism, or None."""
        if self.attention_layer is None:
            return None
        return list(self.attention_layer) if isinstance(self.attention_layer, (list, tuple)) \
            else [self.attention_layer]

    @property
    def multiple(self):
        return isinstance(self.attention, (list, tuple))

    @property
    def monotonic(self):
        return any(isinstance(m, MonotonicAttention) for m in self.mechanisms)

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def cell_output_size(self):
        return self.cell.state_size[0]

    def _require_memory_dim(self):
        if self.memory_dim is None:
            raise ValueError("AttentionWrapper: the attention size depends on the memory's "
                             "feature size here; give `memory_dim` or call `setup_memory` first")
        return self.memory_dim

    @property
    def attention_sizes(self):
        """The size of each mechanism's attention vector a_t^k."""
        layers = self.attention_layers
        if layers is None:
            return [self._require_memory_dim()] * len(self.mechanisms)
        if not self.custom_attention_layer:
            sizes = self.attention_layer_size
            return list(sizes) if isinstance(sizes, list) else [sizes]
        shape = (None, self.cell_output_size + self._require_memory_dim())
        return [int(layer.compute_output_shape(shape)[-1]) for layer in layers]

    @property
    def attention_size(self):
        return sum(self.attention_sizes)

    @property
    def state_size(self):
        # The alignments have the (dynamic) length of the memory.
        return [*self.cell.state_size, self.attention_size, *[None] * len(self.mechanisms)]

    @property
    def output_size(self):
        return self.attention_size if self.output_attention else self.cell_output_size

    def _cell_inputs(self, inputs, previous_attention):
        if self.cell_input_fn is not None:
            return self.cell_input_fn(inputs, previous_attention)
        if self.input_feeding:
            return tf.concat([inputs, previous_attention], -1)
        return inputs

    def _cell_input_size(self, features):
        if self.cell_input_fn is None:
            return features + (self.attention_size if self.input_feeding else 0)
        probe = self.cell_input_fn(tf.zeros([1, features]), tf.zeros([1, self.attention_size]))
        return int(probe.shape[-1])

    def _build_mechanisms(self):
        for mechanism in self.mechanisms:
            if not mechanism.built:
                mechanism.build((None, self.cell_output_size), (None, None, self.memory_dim))

    def build(self, input_shape):
        if self.memory_dim is None:
            raise ValueError("AttentionWrapper: cannot build without the memory's feature size; "
                             "give `memory_dim` or call `setup_memory(memory)` first")
        features = int(input_shape[-1])
        if not self.cell.built:
            self.cell.build((None, self._cell_input_size(features)))
        self._build_mechanisms()
        for layer in self.attention_layers or ():
            if not layer.built:
                layer.build((None, self.cell_output_size + self.memory_dim))
        self.input_features = features
        self.built = True

    # -- memory ---------------------------------------------------------------------------------
    @in_compute_dtype
    def project_memory(self, memory):
        """``attention.project_keys(memory)``: computed once per source, reused every step (a
        list, one per mechanism, with several)."""
        keys = [m.project_keys(memory) for m in self.mechanisms]
        return keys if self.multiple else keys[0]

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
        self._build_mechanisms()
        self._memory = memory
        self._memory_mask = None if memory_mask is None else tf.cast(memory_mask, tf.bool)
        self._keys = self.project_memory(memory)

    def initial_alignments(self, memory):
        """α_0 of each mechanism (a list): zeros, or for monotonic attention all mass on the
        first memory position."""
        zeros = tf.zeros_like(memory[:, :, 0])
        first = tf.one_hot(0, tf.shape(memory)[1], dtype=zeros.dtype)
        return [zeros + first if isinstance(m, MonotonicAttention) else zeros
                for m in self.mechanisms]

    @in_compute_dtype
    def get_initial_state(self, batch_size=None, cell_state=None, memory=None):
        """``[*cell_state, a_0 = 0, α_0...]``; ``cell_state`` defaults to the cell's zeros (an
        encoder's final state is the usual choice), ``memory`` to the one of ``setup_memory``."""
        memory = self._memory if memory is None else memory
        if memory is None:
            raise ValueError("AttentionWrapper.get_initial_state needs a memory: pass `memory=` "
                             "or call `setup_memory` first")
        if self.memory_dim is None:
            self.memory_dim = int(memory.shape[-1])
        batch = tf.shape(memory)[0]
        if cell_state is None:
            cell_state = self.cell.get_initial_state(batch)
        attention = tf.zeros([batch, self.attention_size], dtype=self.compute_dtype)
        return [*cell_state, attention, *self.initial_alignments(memory)]

    # -- one step -------------------------------------------------------------------------------
    @in_compute_dtype
    def step(self, inputs, states, memory, keys=None, memory_mask=None, training=None):
        """One decoder step: ``(output, new_states, alignments)`` (see the module docstring);
        ``alignments`` is a list, one per mechanism, with several."""
        if not self.built:
            self.memory_dim = self.memory_dim or int(memory.shape[-1])
            self.build(inputs.shape)
        previous_attention = states[len(self.cell.state_size)]
        x = self._cell_inputs(inputs, previous_attention)
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
        keys = keys if self.multiple else [keys]
        layers = self.attention_layers or [None] * len(self.mechanisms)
        attentions, alignments = [], []
        for mechanism, layer, mechanism_keys, previous in zip(
                self.mechanisms, layers, keys, states[n_cell + 1:]):
            extra = {"previous_alignment": previous} if mechanism.uses_previous_alignment \
                else {}
            context, alignment = mechanism(cell_output, memory, mask=memory_mask,
                                           keys=mechanism_keys, training=training, **extra)
            attention = context if layer is None else layer(
                tf.concat([cell_output, context], -1))
            attentions.append(tf.cast(attention, cell_output.dtype))
            alignments.append(alignment)
        attention = attentions[0] if len(attentions) == 1 else tf.concat(attentions, -1)
        output = attention if self.output_attention else cell_output
        return (output, [*new_cell_states, attention, *alignments],
                alignments if self.multiple else alignments[0])

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
        (tfa's ``alignment_history=True`` + ``final_state.alignment_history.stack()``; a list
        of histories, one per mechanism, with several). ``mask`` (B, T) carries the state
        through masked steps, as every kzoo sequence layer.
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
        n = len(self.mechanisms)
        memory_time = tf.shape(memory)[1]
        # The scan engine emits states[0]; emit [output; alignments...] packed in one tensor.
        packed = tf.zeros([batch, width + n * memory_time], dtype=self.compute_dtype)

        def scan_step(x_t, carry):
            output, new_states, alignments = self.step(x_t, carry[1:], memory, keys,
                                                       memory_mask, training=training)
            alignments = alignments if self.multiple else [alignments]
            emitted = tf.concat([output, *[tf.cast(a, output.dtype) for a in alignments]], -1)
            return emitted, [emitted, *new_states]

        _, packed_outputs, final = scan(scan_step, inputs, [packed, *states], mask=mask)
        outputs = packed_outputs[..., :width]
        if not self.multiple:
            return outputs, packed_outputs[..., width:], final[1:]
        history = [packed_outputs[..., width + k * memory_time:width + (k + 1) * memory_time]
                   for k in range(n)]
        return outputs, history, final[1:]

    def get_config(self):
        s = keras.saving.serialize_keras_object
        attention = [s(m) for m in self.mechanisms] if self.multiple else s(self.attention)
        config = {
            "cell": s(self.cell),
            "attention": attention,
            "attention_layer_size": None if self.custom_attention_layer
            else self.attention_layer_size,
            "attention_activation": s(self.attention_activation),
            "output_attention": self.output_attention,
            "input_feeding": self.input_feeding,
            "memory_dim": self.memory_dim,
            "attention_layer": None,
            "cell_input_fn": serialize_callable("AttentionWrapper", "cell_input_fn",
                                                self.cell_input_fn),
        }
        if self.custom_attention_layer:
            layers = [s(layer) for layer in self.attention_layers]
            config["attention_layer"] = layers if self.multiple else layers[0]
        return {**super().get_config(), **config}


def _load(value):
    return keras.saving.deserialize_keras_object(value) if isinstance(value, dict) else value


def _per_mechanism(where, name, value, count, multiple):
    """``value`` as a list of ``count`` entries (None stays None); a list is required, and its
    length checked, with several mechanisms."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{where}: `{name}` has {len(value)} entries for {count} attention "
                             f"mechanism(s); give one per mechanism")
        return list(value)
    if multiple:
        raise ValueError(f"{where}: with {count} attention mechanisms, `{name}` must be a list "
                         f"of {count} entries (one per mechanism), got {value!r}")
    return [value]
