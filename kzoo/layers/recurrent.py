"""The sequence layer every kzoo recurrent layer is: a cell run over time by the scan engine.

``Recurrent(cell)`` runs ``cell.step`` through :func:`kzoo.layers.scan.scan`, which applies
``cell.project_inputs`` to all time steps in one matmul or step by step, and hands the engine
what the cell offers beyond its step: its engine step (``cell.engine_step``) and its cuDNN kernel
(``cell.cudnn_kernel``). It takes the arguments ``keras.layers.RNN`` users know:
``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``, ``unroll``,
``zero_output_for_mask``, ``initial_state=`` and ``mask=``.
"""

import keras
import tensorflow as tf

from kzoo.layers.cell import RecurrentCell
from kzoo.layers.cudnn import cudnn_refusal, gpu_available, run_cudnn
from kzoo.layers.scan import scan
from kzoo.layers.target import get_trace_target, tracing_for_tflite

_LAYER_KEYS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
               "zero_output_for_mask")
_BASE_KEYS = ("name", "trainable", "dtype")


USE_CUDNN = ("auto", True, False)


def check_use_cudnn(layer_name, use_cudnn):
    """``use_cudnn`` as Keras' LSTM and GRU take it: ``"auto"``, True or False."""
    if not any(use_cudnn is v or (isinstance(v, str) and use_cudnn == v) for v in USE_CUDNN):
        raise ValueError(f"{layer_name}: `use_cudnn` must be one of {USE_CUDNN}, got "
                         f"{use_cudnn!r}")
    return use_cudnn


class Recurrent(keras.layers.Layer):
    """Runs ``cell`` over the time axis of ``(batch, time, ...)`` inputs.

    Subclasses (``SimpleRNN``, ``LSTM``...) build their cell from their own arguments, and their
    config is the cell's arguments plus the layer's, as in Keras.

    Args:
      cell: a :class:`kzoo.layers.RecurrentCell`.
      return_sequences: return the output of every step ``(batch, time, ...)``, not the last.
      return_state: also return the final states.
      go_backwards: process the sequence in reverse (outputs in processing order, as Keras).
      stateful: the final states of a batch are the initial states of the next (needs a fixed
        batch size).
      unroll: accepted as Keras takes it, and kept in the config. Keras unrolls the loop into
        one op per step; kzoo computes the same result with the scan engine's loop (a static
        time axis is still needed, as in Keras, which refuses to unroll an undefined one).
      zero_output_for_mask: masked steps output zeros instead of the previous output.
      **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ``trainable``,
        ``activity_regularizer``).

    Call arguments:
      sequences: ``(batch, time, features)`` (frames ``(batch, time, rows, cols, channels)`` for
        the convolutional cells). Integer and bool inputs are cast to the layer's dtype, as
        Keras casts them.
      initial_state: a tensor or list of tensors, one per state; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      The output (last, or every step's), then with ``return_state`` the final states.

    Raises:
      ValueError: inputs of the wrong rank, zero time steps, a last dimension other than the
        one the cell was built for, a mask not of shape (batch, time), a wrong number of initial
        states, ``stateful`` without a fixed batch size, ``unroll`` with an undefined time
        axis, or ``use_cudnn=True`` where cuDNN cannot run.
      TypeError: non-numeric (string) inputs or a cell that is not a kzoo ``RecurrentCell``.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.Recurrent(kzoo.layers.GRUCell(4), return_sequences=True)
    outputs = layer(tf.zeros((2, 6, 3)), mask=tf.sequence_mask([6, 2], 6))    # (2, 6, 4)
    ```
    """

    cell_class = None

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        self._check_cell(cell)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True
        self.states = None

    def _check_cell(self, cell):
        if not isinstance(cell, RecurrentCell):
            raise TypeError(f"{type(self).__name__}: `cell` must be a kzoo RecurrentCell, "
                            f"got {type(cell).__name__}")

    @classmethod
    def _split_kwargs(cls, kwargs):
        """Separate the layer's own keyword arguments from the cell's."""
        # activity_regularizer belongs to the layer, whose outputs Keras regularizes (as for
        # keras.layers.LSTM); the cell's own outputs never pass through Layer.__call__.
        layer_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _LAYER_KEYS + _BASE_KEYS
                        or k in ("input_shape", "batch_input_shape", "batch_size",
                                 "activity_regularizer")}
        return layer_kwargs, kwargs

    # -- shapes and validation ------------------------------------------------------------------
    @property
    def _rank(self):
        return self.cell.step_input_rank() + 1

    def _describe(self):
        return f"{type(self).__name__} layer '{self.name}'"

    def _check_shape(self, shape):
        shape = tuple(shape)
        rank = self._rank
        if rank is not None and len(shape) != rank:
            expected = {3: "(batch, time, features)", 4: "(batch, time, steps, channels)",
                        5: "(batch, time, rows, cols, channels)",
                        6: "(batch, time, depth, rows, cols, channels)"}[rank]
            raise ValueError(f"{self._describe()} expects inputs of rank {rank} {expected}, "
                             f"got shape {shape}")
        if shape[1] == 0:
            raise ValueError(f"{self._describe()} got a sequence of zero time steps "
                             f"(shape {shape}); every sequence needs at least one step")
        if self.unroll and shape[1] is None:
            raise ValueError(f"{self._describe()} has unroll=True and needs a defined time "
                             f"axis, got shape {shape}: give the Input a `shape` with the "
                             f"number of steps, or pass unroll=False (the result is the same)")
        expected_features = getattr(self.cell, "input_features", None)
        if self.cell.built and expected_features is not None and shape[-1] is not None \
                and shape[-1] != expected_features:
            raise ValueError(f"{self._describe()} was built for inputs with last dimension "
                             f"{expected_features}, got shape {shape}")

    def _check_batch(self, sequences):
        """A stateful layer's batch size is the one its states were made for."""
        if self.stateful and self.states:
            expected = self.states[0].shape[0]
            batch = sequences.shape[0]
            if batch is not None and expected is not None and batch != expected:
                raise ValueError(f"{self._describe()} is stateful: the batch size of the inputs "
                                 f"must be the batch size its states were made for, {expected}, "
                                 f"got {batch}")

    def _check_dtype(self, sequences):
        dtype = tf.as_dtype(sequences.dtype)
        if not (dtype.is_floating or dtype.is_integer or dtype == tf.bool):
            raise TypeError(f"{self._describe()} expects numeric inputs, got {dtype.name}")

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_shape(sequences_shape)
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if not self.cell.built:
            self.cell.build(step_shape)
        if self.stateful:
            self._add_state_weights(sequences_shape, self.cell.get_initial_state)

    def _add_state_weights(self, sequences_shape, initial_states):
        """A stateful layer's non-trainable state variables, shaped as ``initial_states(batch)``
        (a flat list of tensors)."""
        batch = sequences_shape[0]
        if batch is None:
            raise ValueError(f"{self._describe()} is stateful and needs a fixed batch size: "
                             f"give the Input a `batch_size` (got shape {sequences_shape})")
        self.states = [
            self.add_weight(name=f"state_{i}", shape=tuple(s.shape), initializer="zeros",
                            trainable=False)
            for i, s in enumerate(initial_states(batch))
        ]

    def reset_state(self):
        if self.states is not None:
            for variable in self.states:
                variable.assign(tf.zeros_like(variable))

    def reset_states(self):
        self.reset_state()

    def _state_shapes(self, batch):
        return [(batch, *(s if isinstance(s, (list, tuple)) else (s,)))
                for s in self.cell.state_size]

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        state_shapes = self._state_shapes(batch)
        output = state_shapes[0]
        if self.return_sequences:
            output = (batch, time) + tuple(output[1:])
        if self.return_state:
            return (output, *state_shapes)
        return output

    def compute_mask(self, sequences, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.cell.state_size)
        return output_mask

    # -- the forward pass -----------------------------------------------------------------------
    def _initial_states(self, sequences, initial_state):
        batch = tf.shape(sequences)[0]
        if initial_state is None:
            if self.stateful:
                return [tf.convert_to_tensor(v) for v in self.states]
            return self.cell.get_initial_state(batch)
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
            else [initial_state]
        if len(states) != len(self.cell.state_size):
            raise ValueError(f"{self._describe()} expects {len(self.cell.state_size)} initial "
                             f"state tensor(s), got {len(states)}")
        return [tf.cast(s, self.cell.compute_dtype) for s in states]

    def _check_mask(self, sequences, mask):
        if mask is None:
            return None
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None:
            return None
        mask = tf.convert_to_tensor(mask)
        if mask.shape.rank != 2:
            raise ValueError(f"{self._describe()} expects a mask of shape (batch, time), got "
                             f"shape {tuple(mask.shape)}")
        return tf.cast(mask, tf.bool)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_dtype(sequences)
        self._check_shape(sequences.shape)
        self._check_batch(sequences)
        sequences = tf.cast(sequences, self.cell.compute_dtype)
        mask = self._check_mask(sequences, mask)
        if mask is not None and not tracing_for_tflite():
            # Padding never reaches the output, but NaN padding (missing values) would reach the
            # kernel's gradient through the all-steps projection (0 * NaN): zero it first. (A
            # TFLite file computes no gradient; there these ops would only enlarge the graph.)
            step_mask = mask
            for _ in range(sequences.shape.rank - 2):
                step_mask = tf.expand_dims(step_mask, -1)   # (a TFLite builtin; [..., None] isn't)
            sequences = tf.where(step_mask, sequences, tf.zeros_like(sequences))
        states = self._initial_states(sequences, initial_state)
        cell = self.cell
        if training and cell.dropout > 0:
            # One dropout mask per sequence, shared by every step (as Keras).
            sequences = sequences * tf.expand_dims(cell.get_dropout_mask(sequences[:, 0]), 1)
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.get_recurrent_dropout_mask(states[0])
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()

        last_output, outputs, final_states = self._run(sequences, states, mask, recurrent_mask)

        if self.stateful:
            for variable, value in zip(self.states, final_states):
                variable.assign(value)
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return self._in_layer_dtype([output, *final_states])
        return self._in_layer_dtype(output)

    def _in_layer_dtype(self, results):
        """The results in the layer's compute dtype, as Keras returns them (a cell made apart
        may compute in another)."""
        dtype = self.compute_dtype
        return tf.nest.map_structure(
            lambda x: x if x.dtype == dtype else tf.cast(x, dtype), results)

    def _run(self, sequences, states, mask, recurrent_mask):
        cell = self.cell
        # The narrow inputs (not the k·units-wide projection) go to time-major; the engine
        # projects them (all steps in one matmul, or step by step inside its loops).
        perm = [1, 0] + list(range(2, sequences.shape.rank))

        def step(projected_t, step_states):
            return cell.step(projected_t, step_states, recurrent_mask)

        cudnn = None
        refusal = self._cudnn_refusal(mask, recurrent_mask)
        if refusal is None:
            kernel = cell.cudnn_kernel()

            def cudnn(portable):
                return run_cudnn(kernel, sequences, states, mask, self.go_backwards,
                                 self.return_sequences, portable)

        return scan(step, tf.transpose(sequences, perm), states, mask=mask,
                    go_backwards=self.go_backwards, return_sequences=self.return_sequences,
                    zero_output_for_mask=self.zero_output_for_mask, time_major=True,
                    output_is_state=True, project=cell.project_inputs,
                    independent_rows=recurrent_mask is None,
                    engine_step=cell.engine_step(recurrent_mask), cudnn=cudnn)

    def _cudnn_refusal(self, mask, recurrent_mask):
        """Why this call may not run on cuDNN, or None; raises where ``use_cudnn=True`` and
        cuDNN cannot run, as Keras raises."""
        use_cudnn = getattr(self, "use_cudnn", "auto")
        if use_cudnn is False:
            return "use_cudnn=False"
        # cuDNN emits zeros at padded steps: with a mask, only where that is what we emit too.
        zeros_at_padding = mask is None or not self.return_sequences or self.zero_output_for_mask
        refusal = None if zeros_at_padding else \
            "a mask with return_sequences and zero_output_for_mask=False"
        refusal = refusal or cudnn_refusal(self.cell, recurrent_mask)
        if use_cudnn is True and get_trace_target() == "keras":
            reason = refusal or (None if gpu_available() else "TensorFlow sees no GPU")
            if reason is not None:
                raise ValueError(
                    f"{self._describe()}: use_cudnn=True was specified, but cuDNN cannot run "
                    f"this layer here ({reason}). Pass use_cudnn='auto' to fall back to the "
                    f"portable loop.")
        return refusal

    # -- config ---------------------------------------------------------------------------------
    def get_config(self):
        cell_config = {k: v for k, v in self.cell.get_config().items() if k not in _BASE_KEYS}
        layer_config = {k: getattr(self, k) for k in _LAYER_KEYS}
        layer_config["activity_regularizer"] = keras.regularizers.serialize(
            self.activity_regularizer)
        return {**super().get_config(), **cell_config, **layer_config}
