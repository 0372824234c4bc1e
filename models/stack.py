"""The recurrent stack every zoo pattern is built from, and the config checks they share.

``recurrent_stack(x, cell="lstm", units=64, num_layers=2, bidirectional=True)`` builds, in the
functional API, ``num_layers`` recurrent layers where the sequence of layer k feeds layer k+1, with
dropout between layers, optional residual connections, and each layer optionally bidirectional
(forward and backward passes merged by ``merge_mode``). ``sequence_inputs`` makes the input of a
pattern: an ``Embedding(mask_zero=True)`` for token ids or plain real-valued features.
"""


import keras

import kzoo.layers
from kzoo.checks import check_choice, check_positive_int, check_rate
from kzoo.layers.bidirectional import MERGE_MODES

CELLS = ("rnn", "lstm", "gru")
# Convolutional cells over frames (batch, time, rows, cols, channels); `units` is their `filters`.
CONV_CELLS = ("convlstm", "convgru")
# Jordan recurs on its own *outputs*, so it is the output layer, not a hidden layer of a stack:
# patterns that use it build it themselves (see many_to_many_jordan).
ALL_CELLS = CELLS + CONV_CELLS + ("jordan",)

_LAYER_CLASS_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU", "jordan": "Jordan",
                      "convlstm": "ConvLSTM2D", "convgru": "ConvGRU2D"}


def validate_common(where="", *, cell=None, cells=CELLS, units=None, num_layers=None,
                    merge_mode=None, dropout=None, **sizes):
    """Check the config keys every pattern shares; raise ValueError naming the bad one.

    Only the arguments given are checked. ``sizes`` are positive integer sizes by name
    (``vocab_size=...``, ``input_dim=...``, ``num_classes=...``); ``None`` in ``sizes`` means
    "not used" (for example ``vocab_size=None`` for real-valued inputs) and passes.
    """
    if cell is not None:
        check_choice(where, "cell", cell, cells)
    if units is not None:
        check_positive_int(where, "units", units)
    if num_layers is not None:
        check_positive_int(where, "num_layers", num_layers)
    if merge_mode is not None:
        check_choice(where, "merge_mode", merge_mode, MERGE_MODES)
    if dropout is not None:
        check_rate(where, "dropout", dropout)
    for name, value in sizes.items():
        check_positive_int(where, name, value, allow_none=True)


def make_layer(cell, units, **kwargs):
    """The kzoo sequence layer for ``cell`` ("rnn", "lstm", "gru", "jordan") with ``units``.

    ``kwargs`` go to the layer (``return_sequences``, ``return_state``, ``stateful``,
    ``recurrent_dropout``, ``name``...; ``output_units`` for Jordan). The conv cells
    ("convlstm", "convgru") take ``units`` as their ``filters`` and need ``kernel_size``.
    """
    check_choice("make_layer", "cell", cell, ALL_CELLS)
    layer_class = getattr(kzoo.layers, _LAYER_CLASS_NAMES[cell], None)
    if layer_class is None:
        raise ValueError(f"make_layer: cell {cell!r} needs kzoo.layers.{_LAYER_CLASS_NAMES[cell]},"
                         f" which this kzoo version does not have")
    return layer_class(units, **kwargs)


def bidirectional_class():
    # kzoo.layers.Bidirectional (a keras.layers.Bidirectional subclass) when it exists.
    return getattr(kzoo.layers, "Bidirectional", keras.layers.Bidirectional)


def _split_initial_state(initial_state, num_layers):
    """``initial_state`` is one state list for the first layer, or one (or None) per layer."""
    if initial_state is None:
        return [None] * num_layers
    states = list(initial_state)
    if states and all(s is None or isinstance(s, (list, tuple)) for s in states):
        if len(states) != num_layers:
            raise ValueError(f"recurrent_stack: per-layer `initial_state` needs {num_layers} "
                             f"entries (one per layer), got {len(states)}")
        return [None if s is None else list(s) for s in states]
    return [states] + [None] * (num_layers - 1)


def recurrent_stack(inputs, *, cell="lstm", units=64, num_layers=1, bidirectional=False,
                    merge_mode="concat", dropout=0.0, residual=False, return_sequences=True,
                    return_state=False, initial_state=None, mask=None, name="rnn",
                    **layer_kwargs):
    """Stack ``num_layers`` recurrent layers on the KerasTensor ``inputs`` (batch, time, features).

    ``cell`` is "rnn", "lstm" or "gru" (or "convlstm"/"convgru" over frames (batch, time, rows,
    cols, channels), with ``kernel_size=`` in ``layer_kwargs`` and ``units`` as filters).
    Layer k's output sequence is layer k+1's input; ``Dropout(dropout)`` sits between layers
    (not after the last). ``residual=True`` adds a layer's input to its output, ``x_{k+1} =
    x_k + layer_k(x_k)``, on every layer whose output is a sequence; where the widths differ
    (usually layer 1, input features vs units) the input goes through a bias-free linear
    projection first. The last layer of a ``return_sequences=False`` stack returns a vector and
    gets no residual. ``bidirectional`` wraps every layer in ``kzoo.layers.Bidirectional`` with
    ``merge_mode`` in concat/sum/mul/ave (concat doubles the width).

    Returns the output (``(B, T, W)`` if ``return_sequences`` else ``(B, W)``), or with
    ``return_state=True`` the pair ``(output, states)``: the final states of the last layer, a
    list (``[h, c]`` for LSTM, ``[h]`` for RNN/GRU; bidirectional: forward states then backward
    states, e.g. ``[h_fw, c_fw, h_bw, c_bw]``) ready to initialize a decoder.

    ``initial_state``: a state list for the first layer, or a list with one state list (or None)
    per layer. ``mask`` overrides the Keras mask carried by ``inputs`` (an Embedding with
    ``mask_zero`` sets one). ``layer_kwargs`` go to every recurrent layer (``stateful``,
    ``recurrent_dropout``, ``zero_output_for_mask``...). Layers are named ``{name}_{k}``.
    """
    validate_common("recurrent_stack", cell=cell, cells=CELLS + CONV_CELLS, units=units,
                    num_layers=num_layers, merge_mode=merge_mode, dropout=dropout)
    states_per_layer = _split_initial_state(initial_state, num_layers)
    x = inputs
    states = None
    for k in range(num_layers):
        last = k == num_layers - 1
        sequences_out = return_sequences or not last
        wants_state = return_state and last
        layer = make_layer(cell, units, return_sequences=sequences_out, return_state=wants_state,
                           name=f"{name}_{k + 1}" if not bidirectional else f"{name}_{k + 1}_fw",
                           **layer_kwargs)
        if bidirectional:
            layer = bidirectional_class()(layer, merge_mode=merge_mode, name=f"{name}_{k + 1}")
        call_kwargs = {}
        if states_per_layer[k] is not None:
            call_kwargs["initial_state"] = states_per_layer[k]
        if k == 0 and mask is not None:
            call_kwargs["mask"] = mask
        outputs = layer(x, **call_kwargs)
        if wants_state:
            outputs, *states = outputs
        if residual and sequences_out:
            shortcut = x
            if x.shape[-1] != outputs.shape[-1]:
                shortcut = kzoo.layers.Dense(outputs.shape[-1], use_bias=False,
                                             name=f"{name}_{k + 1}_shortcut")(x)
            outputs = keras.layers.Add(name=f"{name}_{k + 1}_residual")([shortcut, outputs])
        if dropout and not last:
            outputs = keras.layers.Dropout(dropout, name=f"{name}_{k + 1}_dropout")(outputs)
        x = outputs
    if return_state:
        return x, states
    return x


def sequence_inputs(*, vocab_size=None, embedding_dim=64, input_dim=None, sequence_length=None,
                    batch_size=None, name="inputs"):
    """The input of a sequence model: ``(Input, features)``.

    With ``input_dim``, the Input holds real features ``(B, T, input_dim)``. Otherwise it holds
    int32 token ids ``(B, T)`` below ``vocab_size`` (0 is padding) and the features are
    ``Embedding(vocab_size, embedding_dim, mask_zero=True)`` of them, so padding is masked in
    every recurrent layer after it.
    """
    if input_dim is None and vocab_size is not None:
        inputs = keras.Input((sequence_length,), batch_size=batch_size, dtype="int32", name=name)
        features = kzoo.layers.TokenEmbedding(vocab_size, embedding_dim, mask_zero=True,
                                              name=f"{name}_embedding")(inputs)
        return inputs, features
    if input_dim is None:
        raise ValueError("sequence_inputs: give `vocab_size` (token ids) or `input_dim` "
                         "(real-valued features)")
    inputs = keras.Input((sequence_length, input_dim), batch_size=batch_size, name=name)
    return inputs, inputs
