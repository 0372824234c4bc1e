"""The base every kzoo cell shares: one step split into an input projection and a recurrent step.

A cell computes one time step as ``step(project_inputs(x_t), states)``. Splitting it this way lets
the sequence layers project the inputs of *all* time steps in one matmul before the loop, and
lets the same cell also be stepped by ``keras.layers.RNN`` through the usual
``call(inputs, states, training)``.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend import AutocastScope, get_autocast_scope

# Keras' RNN layer pre-creates and resets per-sequence dropout masks only for cells that are
# instances of this mixin (keras/src/layers/rnn/rnn.py), so ours inherit it to behave the same
# inside keras.layers.RNN.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from kzoo.checks import check_choice, check_positive_int, check_rate  # noqa: F401


# The arguments every cell takes from RecurrentCell, written once: `with_cell_args` puts them into
# a cell's docstring in place of its line "{cell_args}".
CELL_ARGS = """\
use_bias: whether the cell adds a bias; default True.
kernel_initializer: initializer of the input kernel ``W``; default ``"glorot_uniform"``.
recurrent_initializer: initializer of the recurrent kernel ``U``; default ``"orthogonal"``.
bias_initializer: initializer of the bias; default ``"zeros"``.
kernel_regularizer: regularizer of ``W``; default None.
recurrent_regularizer: regularizer of ``U``; default None.
bias_regularizer: regularizer of the bias; default None.
kernel_constraint: constraint on ``W``; default None.
recurrent_constraint: constraint on ``U``; default None.
bias_constraint: constraint on the bias; default None.
dropout: float in [0, 1), the fraction of the inputs dropped in training (one mask per
  sequence); default 0.
recurrent_dropout: float in [0, 1), the fraction of the state dropped where it enters the
  recurrent matmul in training; default 0.
seed: int or None, the seed of the dropout masks; None draws one.
**kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ``trainable``)."""


def with_cell_args(cls):
    """``cls`` with :data:`CELL_ARGS` in its docstring at the line ``{cell_args}``, indented
    as that line."""
    if not cls.__doc__:   # python -OO
        return cls
    lines = []
    for line in cls.__doc__.splitlines():
        if line.strip() == "{cell_args}":
            indent = line[:len(line) - len(line.lstrip())]
            lines += [indent + arg for arg in CELL_ARGS.splitlines()]
        else:
            lines.append(line)
    cls.__doc__ = "\n".join(lines)
    return cls


@with_cell_args
class RecurrentCell(DropoutRNNCell, keras.layers.Layer):
    """One recurrent step ``(y_t, s_t) = step(project_inputs(x_t), s_{t-1})``: the base of every
    kzoo cell.

    Subclasses define ``state_size``, ``build``, ``project_inputs`` (applies to any number of
    leading axes, so ``(B, T, F)`` projects every step at once) and ``step``. The first state
    always has the shape of the output. A cell runs over a sequence in
    :class:`kzoo.layers.Recurrent` (or ``keras.layers.RNN``), and steps alone through
    ``call(inputs, states, training)``.

    Args:
      units: positive int, the size of the output (and of the first state).
      activation: the cell's activation (name or callable); default ``"tanh"``.
      {cell_args}

    Call arguments:
      inputs: ``(batch, features)``, the input of one step.
      states: the list of state tensors of the previous step (see ``state_size``).
      training: apply dropout; default False.

    Returns:
      ``(output, new_states)``.

    Raises:
      ValueError: a ``units`` that is not a positive int, or a dropout rate outside [0, 1).

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.SimpleRNNCell(3, dropout=0.5, seed=1)   # a RecurrentCell
    output, states = cell(tf.ones((2, 4)), [tf.zeros((2, 3))], training=True)
    ```
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.units = check_positive_int(name, "units", units)
        self.activation = get_activation(name, "activation", activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = check_rate(name, "dropout", dropout)
        self.recurrent_dropout = check_rate(name, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

    def add_kernel(self, name, shape, kind):
        """A weight with the initializer/regularizer/constraint of ``kind``
        ("kernel", "recurrent" or "bias")."""
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=getattr(self, f"{kind}_initializer"),
            regularizer=getattr(self, f"{kind}_regularizer"),
            constraint=getattr(self, f"{kind}_constraint"),
        )

    # -- the split step -------------------------------------------------------------------------
    def project_inputs(self, inputs):
        raise NotImplementedError

    def step(self, projected, states, recurrent_mask=None):
        """``projected`` is ``project_inputs(x_t)``; returns ``(output, new_states)``."""
        raise NotImplementedError

    def engine_step(self, recurrent_mask=None):
        """This step as the scan engine runs and differentiates it itself, if it can.

        Args:
          recurrent_mask: the recurrent dropout mask of this call, or None.

        Returns:
          A :class:`kzoo.layers.step_gradient.EngineStep` (the step's equations with their
          hand-derived gradient, and the weights they read), or ``None`` when this configuration
          has none: the engine then runs ``step`` and TensorFlow differentiates it.
        """
        return None

    def cudnn_kernel(self):
        """Keras' fused cuDNN kernel for this cell's configuration.

        Only the cell knows whether its equations are those of a cuDNN kernel;
        :func:`kzoo.layers.cudnn.cudnn_refusal` adds the checks every kernel shares, and the scan
        engine's plan decides whether it runs (a GPU, the default loop form, a Keras trace).

        Returns:
          ``kernel(sequences, states, mask, go_backwards) -> (last_output, outputs, new_states)``
          on batch-major sequences, computing this cell's step with its own weights.

        Raises:
          NotImplementedError: naming why this configuration has no cuDNN kernel.
        """
        raise NotImplementedError(f"{type(self).__name__} has no cuDNN kernel")

    # -- keras.layers.RNN protocol --------------------------------------------------------------
    @property
    def output_size(self):
        return self.state_size[0]

    def call(self, inputs, states, training=False):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        recurrent_mask = None
        if training and self.recurrent_dropout > 0:
            recurrent_mask = self.get_recurrent_dropout_mask(states[0])
        output, new_states = self.step(self.project_inputs(inputs), states, recurrent_mask)
        return output, list(new_states)

    def get_initial_state(self, batch_size=None):
        return [
            tf.zeros([batch_size, *(s if isinstance(s, (list, tuple)) else (s,))],
                     dtype=self.compute_dtype)
            for s in self.state_size
        ]

    def step_input_rank(self):
        """Rank of one time step of input, batch included (2 for vectors, 4 for frames)."""
        return 2

    def get_config(self):
        s = keras.saving.serialize_keras_object
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": s(self.kernel_initializer),
            "recurrent_initializer": s(self.recurrent_initializer),
            "bias_initializer": s(self.bias_initializer),
            "kernel_regularizer": s(self.kernel_regularizer),
            "recurrent_regularizer": s(self.recurrent_regularizer),
            "bias_regularizer": s(self.bias_regularizer),
            "kernel_constraint": s(self.kernel_constraint),
            "recurrent_constraint": s(self.recurrent_constraint),
            "bias_constraint": s(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def check_implementation(layer_name, implementation):
    """Keras' ``implementation`` argument of the LSTM and GRU cells: 0 (Keras 2's legacy
    value, which Keras 3 reads as 2), 1 or 2."""
    return check_choice(layer_name, "implementation", implementation, (0, 1, 2))


def get_activation(layer_name, name, identifier):
    try:
        return keras.activations.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{layer_name}: unknown `{name}` {identifier!r} ({error})") from None


def in_compute_dtype(method):
    """Run a layer method as the layer's ``call`` runs under a mixed precision policy
    (``keras.mixed_precision.set_global_policy("mixed_float16")``): float tensors among its
    arguments are cast to the layer's compute dtype and its float32 variables are read in that
    dtype (Keras' autocast). Keras does both only inside ``__call__``; the public methods a
    caller runs outside it (a decoder stepping a cell, ``AttentionWrapper.unroll``...) need this
    to be called at all. Under a float32 policy the method runs unchanged."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        dtype = self.compute_dtype
        if dtype == self.variable_dtype:
            return method(self, *args, **kwargs)

        def cast(value):
            if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
                value = tf.convert_to_tensor(value)
            if tf.is_tensor(value) and value.dtype.is_floating and value.dtype != dtype:
                return tf.cast(value, dtype)
            return value

        args, kwargs = tf.nest.map_structure(cast, (args, kwargs))
        scope = get_autocast_scope()
        if scope is not None and scope.dtype == dtype:  # inside a call already
            return method(self, *args, **kwargs)
        with AutocastScope(dtype):
            return method(self, *args, **kwargs)

    return wrapper


def dense(inputs, kernel, bias=None):
    """``inputs @ kernel (+ bias)`` over the last axis, for any number of leading axes: one
    matmul, the bias added to its 2-D result so that TensorFlow fuses the two."""
    flat = inputs if inputs.shape.rank == 2 else tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
    outputs = tf.matmul(flat, kernel)
    if bias is not None:
        outputs = tf.nn.bias_add(outputs, bias)
    if inputs.shape.rank == 2:
        return outputs
    shape = tf.concat([tf.shape(inputs)[:-1], tf.shape(kernel)[-1:]], 0)
    outputs = tf.reshape(outputs, shape)
    outputs.set_shape(inputs.shape[:-1].concatenate(kernel.shape[-1:]))
    return outputs
