"""Convolutional recurrent cells (Shi et al. 2015): the LSTM and GRU with every matmul a conv.

    ConvLSTM:  i, f, c̃, o from  z = conv(x_t, W) + conv(h_{t-1}, U) + b   (gate order i, f, c, o)
               c' = f ⊙ c + i ⊙ tanh(z_c),  h' = o ⊙ tanh(c')
    ConvGRU:   z, r, h̃ as in :mod:`kzoo.layers.gru` with ``x W`` -> conv(x, W),
               ``h U`` -> conv(h, U)

Inputs are frames ``(batch, rows, cols, channels)`` (``channels_last`` only), sequences are
``(batch, time, rows, cols, channels)``; the 1-D and 3-D ConvLSTM take frames of one spatial
axis ``(batch, steps, channels)`` or three ``(batch, depth, rows, cols, channels)``. The input
conv has the layer's strides, padding and
dilation; the recurrent conv is always stride 1, ``"same"`` padding, no dilation, so the state
keeps the output frame size ``(rows', cols', filters)``. Weights are those of
``keras.layers.ConvLSTM2D``: ``kernel`` (kh, kw, channels, k·filters), ``recurrent_kernel``
(kh, kw, filters, k·filters), ``bias`` (k·filters,) (GRU with ``reset_after``: (2, 3·filters)).
"""

import math

import keras
import tensorflow as tf

from kzoo.layers.cell import check_choice, check_positive_int
from kzoo.layers.gru import GRUCell
from kzoo.layers.lstm import LSTMCell
from kzoo.layers.recurrent import Recurrent
from kzoo.layers.scan import scan

# LSTMCell options that have no convolutional form here, with the value that means "off".
_LSTM_ONLY_OPTIONS = {"use_forget_gate": True, "peephole": False, "layer_norm": False,
                      "proj_units": None}
_DENSE_ONLY_CONFIG = ("units", "use_forget_gate", "peephole", "layer_norm", "norm_epsilon",
                      "proj_units", "implementation")


# The frame of each spatial rank, in the words of the error messages.
FRAME_AXES = {1: "steps", 2: "rows, cols", 3: "depth, rows, cols"}


def _int_tuple(layer_name, name, value, rank=2):
    """An int or ``rank`` ints -> a tuple of ``rank`` positive ints."""
    ints = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        ints = tuple(ints)
    except TypeError:
        ints = None
    if ints is None or len(ints) != rank or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in ints):
        what = {1: "one", 2: "a pair of", 3: "three"}[rank]
        raise ValueError(f"{layer_name}: `{name}` must be a positive integer or {what} "
                         f"positive integers, got {value!r}")
    return ints


class _ConvFrames:
    """The convolution arguments, frame shapes and convs shared by the conv cells."""

    # Spatial axes of a frame: 1, 2 or 3.
    spatial_rank = 2

    def engine_step(self, recurrent_mask=None):
        # The dense cells' step gradients derive a recurrent matmul, not a convolution.
        return None

    def cudnn_kernel(self):
        raise NotImplementedError(f"{type(self).__name__} (a convolutional cell) has no cuDNN "
                                  f"kernel")

    def _set_conv_arguments(self, filters, kernel_size, strides, padding, data_format,
                            dilation_rate):
        name = type(self).__name__
        self.filters = check_positive_int(name, "filters", filters)
        rank = self.spatial_rank
        self.kernel_size = _int_tuple(name, "kernel_size", kernel_size, rank)
        self.strides = _int_tuple(name, "strides", strides, rank)
        self.padding = check_choice(name, "padding",
                                    padding.lower() if isinstance(padding, str) else padding,
                                    ("same", "valid"))
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{name}: only data_format='channels_last' (inputs "
                             f"(batch, time, {FRAME_AXES[rank]}, channels)) is supported, got "
                             f"{data_format!r}; transpose channels_first inputs first")
        self.data_format = "channels_last"
        self.dilation_rate = _int_tuple(name, "dilation_rate", dilation_rate, rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{name}: Specifying `strides > 1` is not compatible with "
                             f"`dilation_rate > 1` (as in Keras), got strides={self.strides}, "
                             f"dilation_rate={self.dilation_rate}")
        # Known once built from the input frame shape.
        self.frame_shape = None
        self.output_frame_shape = None

    def _build_frames(self, input_shape):
        """Record the input frame shape and the state's frame shape; returns the channel count."""
        name = type(self).__name__
        input_shape = tuple(input_shape)
        rank, axes = self.spatial_rank, FRAME_AXES[self.spatial_rank]
        if len(input_shape) != rank + 2:
            raise ValueError(f"{name} expects frames of rank {rank + 2} (batch, {axes}, "
                             f"channels), got shape {input_shape}")
        *sizes, channels = input_shape[1:]
        if None in sizes or channels is None:
            raise ValueError(f"{name} needs static {axes} and channels to size its state, "
                             f"got frame shape {input_shape}")
        output = []
        for size, k, s, d in zip(sizes, self.kernel_size, self.strides, self.dilation_rate):
            if self.padding == "same":
                output.append(math.ceil(size / s))
            else:
                output.append((size - (k - 1) * d - 1) // s + 1)
        if min(output) < 1:
            raise ValueError(f"{name}: frames of {'x'.join(map(str, sizes))} are smaller than "
                             f"the dilated "
                             f"kernel {self.kernel_size} (dilation {self.dilation_rate}) with "
                             f"padding='valid'")
        self.frame_shape = tuple(sizes)
        self.output_frame_shape = tuple(output)
        self.input_features = channels
        return channels

    def _conv_state_size(self, count):
        frame = self.output_frame_shape or (None,) * self.spatial_rank
        return [(*frame, self.filters)] * count

    def _conv_inputs(self, inputs, kernel):
        """conv(x, kernel) of frames (B, H, W, C) or of whole sequences (B, T, H, W, C) (one
        spatial axis less or more for the 1-D and 3-D cells)."""
        if not tf.is_tensor(inputs):
            inputs = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        rank = self.spatial_rank
        if inputs.shape.rank == rank + 3:
            # One conv over all B·T frames instead of T convs inside the loop.
            leading = tf.shape(inputs)[:2]
            frames = tf.reshape(inputs, [-1, *inputs.shape[2:]])
            out = self._conv_inputs(frames, kernel)
            return tf.reshape(out, tf.concat([leading, out.shape[1:]], 0))
        if inputs.shape.rank != rank + 2:
            axes = FRAME_AXES[rank]
            raise ValueError(f"{type(self).__name__} expects frames (batch, {axes}, "
                             f"channels) or sequences (batch, time, {axes}, channels), "
                             f"got shape {tuple(inputs.shape)}")
        return tf.nn.convolution(inputs, kernel, strides=self.strides,
                                 padding=self.padding.upper(), dilations=self.dilation_rate)

    @staticmethod
    def _conv_state(h, kernel):
        return tf.nn.convolution(h, kernel, strides=1, padding="SAME")

    def _conv_config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
        }

    def step_input_rank(self):
        return self.spatial_rank + 2


@keras.saving.register_keras_serializable(package="kzoo")
class ConvLSTM2DCell(_ConvFrames, LSTMCell):
    """ConvLSTM cell, weight for weight ``keras.layers.ConvLSTM2D``'s cell (``channels_last``).

    Equations (Shi et al. 2015; ∗ the 2-D convolution, gate order i, f, c, o)::

        z = x_t ∗ W + h_{t-1} ∗ U + b
        i, f, o = σ(z_i), σ(z_f), σ(z_o)
        c' = f ⊙ c + i ⊙ tanh(z_c),   h' = o ⊙ tanh(c')

    The input conv has the cell's strides, padding and dilation; the recurrent conv is stride
    1, ``"same"``, so the state keeps the output frame size. Weights: ``kernel`` (kh, kw,
    channels, 4·filters), ``recurrent_kernel`` (kh, kw, filters, 4·filters), ``bias``
    (4·filters,). State ``[h, c]``, both ``(batch, rows', cols', filters)``. Dropout uses one
    mask for the input of all four gates (Keras draws one per gate).

    Args:
      filters: positive int, the channels of ``h`` (and of each gate).
      kernel_size: int or pair of ints, the size of both convolutions' windows.
      strides: int or pair, the input convolution's strides; default 1.
      padding: ``"valid"`` (default) or ``"same"``, the input convolution's padding (the
        recurrent one is always ``"same"``).
      data_format: None or ``"channels_last"`` (the only layout).
      dilation_rate: int or pair, the input convolution's dilation; default 1 (not with
        strides > 1).
      activation: of the candidate (and of ``c'``); default ``"tanh"``.
      recurrent_activation: of the gates; default ``"sigmoid"``.
      use_bias: whether the cell adds a bias; default True.
      unit_forget_bias: the forget gate's bias starts at 1; default True.
      **kwargs: the other arguments of :class:`kzoo.layers.RecurrentCell`: the
        ``kernel_*``/``recurrent_*``/``bias_*`` initializers, regularizers and constraints,
        ``dropout``, ``recurrent_dropout``, ``seed``, and ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: ``(batch, rows, cols, channels)``, one frame.
      states: ``[h, c]`` of the previous step.
      training: apply dropout; default False.

    Returns:
      ``(h', [h', c'])``.

    Raises:
      ValueError: a ``filters``, ``kernel_size``, ``strides`` or ``dilation_rate`` that is not
        positive, an unknown ``padding``, ``channels_first``, strides with dilation, or a
        dense-cell argument (``units``...).

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.ConvLSTM2DCell(2, 3, padding="same")
    layer = kzoo.layers.Recurrent(cell)
    h = layer(tf.zeros((1, 3, 6, 6, 1)))       # (1, 6, 6, 2)
    ```
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, unit_forget_bias=True, **kwargs):
        name = type(self).__name__
        for option, off in _LSTM_ONLY_OPTIONS.items():
            if option in kwargs and kwargs.pop(option) != off:
                raise ValueError(f"{name}: `{option}` is an option of the dense LSTMCell only; "
                                 f"the convolutional cell is the plain forget-gate LSTM")
        for option in ("units", "norm_epsilon"):
            if option in kwargs:
                raise ValueError(f"{name}: unexpected argument `{option}` (the convolutional "
                                 f"cell is sized by `filters`)")
        self._set_conv_arguments(filters, kernel_size, strides, padding, data_format,
                                 dilation_rate)
        super().__init__(self.filters, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         unit_forget_bias=unit_forget_bias, **kwargs)

    @property
    def state_size(self):
        return self._conv_state_size(2)

    def build(self, input_shape):
        channels = self._build_frames(input_shape)
        gates = 4 * self.filters
        self.kernel = self.add_kernel("kernel", (*self.kernel_size, channels, gates), "kernel")
        self.recurrent_kernel = self.add_kernel(
            "recurrent_kernel", (*self.kernel_size, self.filters, gates), "recurrent")
        self._build_common()

    def _input_transform(self, inputs, bias=None):
        z = self._conv_inputs(inputs, self.kernel)
        return z if bias is None else tf.nn.bias_add(z, bias)

    def _recurrent_transform(self, h):
        return self._conv_state(h, self.recurrent_kernel)

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k not in _DENSE_ONLY_CONFIG}
        return {**config, **self._conv_config()}


@keras.saving.register_keras_serializable(package="kzoo")
class ConvGRU2DCell(_ConvFrames, GRUCell):
    """ConvGRU cell: :class:`kzoo.layers.GRUCell` with convs (gates z, r, h; both ``reset_after``).

    Equations (∗ the 2-D convolution)::

        z = σ(x ∗ W_z + h ∗ U_z + b_z),   r = σ(x ∗ W_r + h ∗ U_r + b_r)
        h̃ = tanh(x ∗ W_h + r ⊙ (h ∗ U_h + b'_h))     (reset_after=True)
        h̃ = tanh(x ∗ W_h + (r ⊙ h) ∗ U_h + b_h)      (reset_after=False)
        h' = z ⊙ h + (1 - z) ⊙ h̃

    ``kernel`` (kh, kw, channels, 3·filters), ``recurrent_kernel`` (kh, kw, filters, 3·filters),
    ``bias`` (2, 3·filters) with ``reset_after`` else (3·filters,). State ``[h]``.

    Args:
      filters: positive int, the channels of ``h`` (and of each gate).
      kernel_size: int or pair of ints, the size of both convolutions' windows.
      strides: int or pair, the input convolution's strides; default 1.
      padding: ``"valid"`` (default) or ``"same"``, the input convolution's padding (the
        recurrent one is always ``"same"``).
      data_format: None or ``"channels_last"`` (the only layout).
      dilation_rate: int or pair, the input convolution's dilation; default 1 (not with
        strides > 1).
      activation: of the candidate (and of ``c'``); default ``"tanh"``.
      recurrent_activation: of the gates; default ``"sigmoid"``.
      use_bias: whether the cell adds a bias; default True.
      reset_after: apply the reset gate after the recurrent conv; default True.
      **kwargs: the other arguments of :class:`kzoo.layers.RecurrentCell`: the
        ``kernel_*``/``recurrent_*``/``bias_*`` initializers, regularizers and constraints,
        ``dropout``, ``recurrent_dropout``, ``seed``, and ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: ``(batch, rows, cols, channels)``, one frame.
      states: ``[h]`` of the previous step.
      training: apply dropout; default False.

    Returns:
      ``(h', [h'])``.

    Raises:
      ValueError: a ``filters``, ``kernel_size``, ``strides`` or ``dilation_rate`` that is not
        positive, an unknown ``padding``, ``channels_first``, strides with dilation, or a
        dense-cell argument (``units``...).

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.ConvGRU2DCell(2, 3)
    h, (state,) = cell(tf.zeros((1, 6, 6, 1)), [tf.zeros((1, 4, 4, 2))])   # "valid": 6 -> 4
    ```
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, reset_after=True, **kwargs):
        if "units" in kwargs:
            raise ValueError(f"{type(self).__name__}: unexpected argument `units` (the "
                             f"convolutional cell is sized by `filters`)")
        self._set_conv_arguments(filters, kernel_size, strides, padding, data_format,
                                 dilation_rate)
        super().__init__(self.filters, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         reset_after=reset_after, **kwargs)

    @property
    def state_size(self):
        return self._conv_state_size(1)

    def build(self, input_shape):
        channels = self._build_frames(input_shape)
        gates = 3 * self.filters
        self.kernel = self.add_kernel("kernel", (*self.kernel_size, channels, gates), "kernel")
        self.recurrent_kernel = self.add_kernel(
            "recurrent_kernel", (*self.kernel_size, self.filters, gates), "recurrent")
        self._build_bias()

    def _input_transform(self, inputs, bias=None):
        z = self._conv_inputs(inputs, self.kernel)
        return z if bias is None else tf.nn.bias_add(z, bias)

    def _recurrent_transform(self, h, kernel):
        return self._conv_state(h, kernel)

    def get_config(self):
        config = {k: v for k, v in super().get_config().items()
                  if k not in ("units", "implementation")}
        return {**config, **self._conv_config()}


class _ConvRecurrent(Recurrent):
    """Recurrent over (batch, time, rows, cols, channels), also checking the frame size the
    cell's state was sized for."""

    def _check_shape(self, shape):
        super()._check_shape(shape)
        shape = tuple(shape)
        expected = self.cell.frame_shape
        frame = shape[2:-1]
        if self.cell.built and expected is not None and None not in frame \
                and tuple(frame) != expected:
            axes = FRAME_AXES[self.cell.spatial_rank].replace(", ", " x ")
            raise ValueError(f"{self._describe()} was built for frames of "
                             f"{'x'.join(map(str, expected))} ({axes}), got shape {shape}")

    def _run(self, sequences, states, mask, recurrent_mask):
        # The step output goes to the scan flattened to a vector: its TFLite form collects
        # outputs in a (chunks, rows, batch, ...) register, and TFLite's STRIDED_SLICE takes at
        # most rank 5, which frames (rank 6 there) would exceed. The output is also the first
        # state (h); the other states (the LSTM's c) stay frames, which the scan only carries.
        # The reshapes are free in TensorFlow, and each is one more op in a TFLite graph.
        cell = self.cell
        leading = tf.shape(sequences)[:2]
        # All B·T frames in one conv, its bias on the rank-4 output (one TFLite CONV_2D with
        # the bias in it), straight to the flat (batch, time, features) the scan takes.
        projected = cell.project_inputs(tf.reshape(sequences, [-1, *sequences.shape[2:]]))
        projected_frame = tuple(projected.shape[1:])
        output_frame = tuple(cell.state_size[0])

        def flatten(x):
            return tf.reshape(x, [-1, math.prod(x.shape[1:])])

        def unflatten(x, frame):
            return tf.reshape(x, [-1, *frame])

        def step(projected_t, step_states):
            h, *rest = step_states
            output, (h, *rest) = cell.step(unflatten(projected_t, projected_frame),
                                           [unflatten(h, output_frame), *rest], recurrent_mask)
            output = flatten(output)
            return output, [output, *rest]

        flat_projected = tf.reshape(projected, tf.concat([leading, [-1]], 0))
        h, *rest = states
        last_output, outputs, (h, *rest) = scan(
            step, flat_projected, [flatten(h), *rest], mask=mask,
            go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask)
        if outputs is not None:
            outputs = tf.reshape(outputs, tf.concat([leading, output_frame], 0))
        h = unflatten(h, output_frame)
        return unflatten(last_output, output_frame), outputs, [h, *rest]


@keras.saving.register_keras_serializable(package="kzoo")
class ConvLSTM2D(_ConvRecurrent):
    """ConvLSTM over ``(batch, time, rows, cols, channels)``; the arguments of
    ``keras.layers.ConvLSTM2D`` (``channels_last``); the equations of :class:`ConvLSTM2DCell`.

    Args:
      filters: positive int, the channels of ``h``.
      kernel_size: int or pair of ints, the convolution window.
      **kwargs: the cell's (:class:`ConvLSTM2DCell`: ``strides``, ``padding``...) and the
        layer's (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, rows, cols, channels)``, floating point.
      initial_state: ``[h, c]``, each ``(batch, rows', cols', filters)``; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ``h`` of the last step ``(batch, rows', cols', filters)``, or every step's with
      ``return_sequences``; then with ``return_state`` the final ``h`` and ``c``.

    Raises:
      ValueError: the cell's argument errors, frames of another size than the layer was built
        for, and as :class:`kzoo.layers.Recurrent`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.ConvLSTM2D(2, 3, padding="same", return_sequences=True)
    frames = layer(tf.zeros((1, 3, 6, 6, 1)))      # (1, 3, 6, 6, 2)
    ```
    """

    def __init__(self, filters, kernel_size, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = ConvLSTM2DCell(filters, kernel_size, dtype=layer_kwargs.get("dtype"),
                              name="conv_lstm_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)


@keras.saving.register_keras_serializable(package="kzoo")
class ConvGRU2D(_ConvRecurrent):
    """ConvGRU over ``(batch, time, rows, cols, channels)``; ConvLSTM2D's arguments with the
    GRU's ``reset_after`` in place of ``unit_forget_bias``; the equations of
    :class:`ConvGRU2DCell`.

    Args:
      filters: positive int, the channels of ``h``.
      kernel_size: int or pair of ints, the convolution window.
      **kwargs: the cell's (:class:`ConvGRU2DCell`: ``strides``, ``padding``,
        ``reset_after``...) and the layer's (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, rows, cols, channels)``, floating point.
      initial_state: ``h`` (or ``[h]``), ``(batch, rows', cols', filters)``; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ``h`` of the last step ``(batch, rows', cols', filters)``, or every step's with
      ``return_sequences``; then with ``return_state`` the final ``h``.

    Raises:
      ValueError: the cell's argument errors, frames of another size than the layer was built
        for, and as :class:`kzoo.layers.Recurrent`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.ConvGRU2D(2, 3)
    h = layer(tf.zeros((1, 3, 6, 6, 1)))            # (1, 4, 4, 2): "valid" padding
    ```
    """

    def __init__(self, filters, kernel_size, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = ConvGRU2DCell(filters, kernel_size, dtype=layer_kwargs.get("dtype"),
                             name="conv_gru_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)


@keras.saving.register_keras_serializable(package="kzoo")
class ConvLSTM1DCell(ConvLSTM2DCell):
    """:class:`ConvLSTM2DCell` over frames of one spatial axis ``(batch, steps, channels)``,
    weight for weight ``keras.layers.ConvLSTM1D``'s cell (``channels_last``).

    Equations: those of :class:`ConvLSTM2DCell` with ∗ the 1-D convolution. ``kernel`` (k,
    channels, 4·filters), ``recurrent_kernel`` (k, filters, 4·filters).

    Args:
      filters: positive int, the channels of ``h``.
      kernel_size: int or one int, the convolution window.
      strides: int or one int, the input convolution's strides; default 1.
      padding: ``"valid"`` (default) or ``"same"``, the input convolution's padding.
      data_format: None or ``"channels_last"`` (the only layout).
      dilation_rate: int or one int, the input convolution's dilation; default 1.
      activation: of the candidate (and of ``c'``); default ``"tanh"``.
      recurrent_activation: of the gates; default ``"sigmoid"``.
      use_bias: whether the cell adds a bias; default True.
      unit_forget_bias: the forget gate's bias starts at 1; default True.
      **kwargs: the other arguments of :class:`ConvLSTM2DCell`.

    Call arguments:
      inputs: ``(batch, steps, channels)``, one frame.
      states: ``[h, c]`` of the previous step.
      training: apply dropout; default False.

    Returns:
      ``(h', [h', c'])``.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.ConvLSTM1DCell(2, 3, padding="same")
    h = kzoo.layers.Recurrent(cell)(tf.zeros((1, 4, 6, 1)))       # (1, 6, 2)
    ```
    """

    spatial_rank = 1


@keras.saving.register_keras_serializable(package="kzoo")
class ConvLSTM3DCell(ConvLSTM2DCell):
    """:class:`ConvLSTM2DCell` over frames of three spatial axes ``(batch, depth, rows, cols,
    channels)``, weight for weight ``keras.layers.ConvLSTM3D``'s cell (``channels_last``).

    Equations: those of :class:`ConvLSTM2DCell` with ∗ the 3-D convolution. ``kernel`` (kd, kh,
    kw, channels, 4·filters), ``recurrent_kernel`` (kd, kh, kw, filters, 4·filters).

    Args:
      filters: positive int, the channels of ``h``.
      kernel_size: int or three ints, the convolution window.
      strides: int or three ints, the input convolution's strides; default 1.
      padding: ``"valid"`` (default) or ``"same"``, the input convolution's padding.
      data_format: None or ``"channels_last"`` (the only layout).
      dilation_rate: int or three ints, the input convolution's dilation; default 1.
      activation: of the candidate (and of ``c'``); default ``"tanh"``.
      recurrent_activation: of the gates; default ``"sigmoid"``.
      use_bias: whether the cell adds a bias; default True.
      unit_forget_bias: the forget gate's bias starts at 1; default True.
      **kwargs: the other arguments of :class:`ConvLSTM2DCell`.

    Call arguments:
      inputs: ``(batch, depth, rows, cols, channels)``, one frame.
      states: ``[h, c]`` of the previous step.
      training: apply dropout; default False.

    Returns:
      ``(h', [h', c'])``.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    cell = kzoo.layers.ConvLSTM3DCell(2, 3, padding="same")
    h = kzoo.layers.Recurrent(cell)(tf.zeros((1, 2, 3, 4, 4, 1)))     # (1, 3, 4, 4, 2)
    ```
    """

    spatial_rank = 3


@keras.saving.register_keras_serializable(package="kzoo")
class ConvLSTM1D(_ConvRecurrent):
    """ConvLSTM over ``(batch, time, steps, channels)``; the arguments of
    ``keras.layers.ConvLSTM1D`` (``channels_last``); the equations of :class:`ConvLSTM2DCell`
    with a 1-D convolution.

    Args:
      filters: positive int, the channels of ``h``.
      kernel_size: int or one int, the convolution window.
      **kwargs: the cell's (:class:`ConvLSTM1DCell`: ``strides``, ``padding``...) and the
        layer's (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, steps, channels)``.
      initial_state: ``[h, c]``, each ``(batch, steps', filters)``; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ``h`` of the last step ``(batch, steps', filters)``, or every step's with
      ``return_sequences``; then with ``return_state`` the final ``h`` and ``c``.

    Raises:
      ValueError: the cell's argument errors, frames of another size than the layer was built
        for, and as :class:`kzoo.layers.Recurrent`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.ConvLSTM1D(2, 3, return_sequences=True)
    frames = layer(tf.zeros((1, 4, 6, 1)))          # (1, 4, 4, 2): "valid" padding
    ```
    """

    def __init__(self, filters, kernel_size, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = ConvLSTM1DCell(filters, kernel_size, dtype=layer_kwargs.get("dtype"),
                              name="conv_lstm_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)


@keras.saving.register_keras_serializable(package="kzoo")
class ConvLSTM3D(_ConvRecurrent):
    """ConvLSTM over ``(batch, time, depth, rows, cols, channels)``; the arguments of
    ``keras.layers.ConvLSTM3D`` (``channels_last``); the equations of :class:`ConvLSTM2DCell`
    with a 3-D convolution.

    Args:
      filters: positive int, the channels of ``h``.
      kernel_size: int or three ints, the convolution window.
      **kwargs: the cell's (:class:`ConvLSTM3DCell`: ``strides``, ``padding``...) and the
        layer's (:class:`kzoo.layers.Recurrent`) arguments.

    Call arguments:
      sequences: ``(batch, time, depth, rows, cols, channels)``.
      initial_state: ``[h, c]``, each ``(batch, depth', rows', cols', filters)``; zeros by
        default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      ``h`` of the last step ``(batch, depth', rows', cols', filters)``, or every step's with
      ``return_sequences``; then with ``return_state`` the final ``h`` and ``c``.

    Raises:
      ValueError: the cell's argument errors, frames of another size than the layer was built
        for, and as :class:`kzoo.layers.Recurrent`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.ConvLSTM3D(2, 3, padding="same")
    h = layer(tf.zeros((1, 2, 3, 4, 4, 1)))          # (1, 3, 4, 4, 2)
    ```
    """

    def __init__(self, filters, kernel_size, **kwargs):
        layer_kwargs, cell_kwargs = self._split_kwargs(kwargs)
        cell = ConvLSTM3DCell(filters, kernel_size, dtype=layer_kwargs.get("dtype"),
                              name="conv_lstm_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
