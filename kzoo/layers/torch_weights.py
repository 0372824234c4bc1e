"""Weights between kzoo recurrent layers and PyTorch's ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN``.

    from_torch(torch_rnn_or_state_dict, layer)   # torch -> kzoo, in place; returns ``layer``
    to_torch(layer, torch_rnn)                   # kzoo -> torch parameters, in place
    to_torch_state_dict(layer)                   # kzoo -> {"weight_ih_l0": ndarray, ...}

torch stores ``weight_ih`` as (gates·hidden, input) and Keras ``kernel`` as (input, gates·units),
so every matrix is transposed, and per cell:

- LSTM: torch's gate order i, f, g, o is Keras' i, f, c, o. torch adds two biases, Keras has one:
  ``bias = b_ih + b_hh`` (``to_torch`` writes ``bias`` to ``bias_ih`` and zeros to ``bias_hh``).
  ``proj_size`` is ``proj_units``: ``weight_hr`` (proj, hidden) is ``projection_kernel``ᵀ.
- GRU: torch computes ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, Keras'
  ``reset_after=True`` form, with gate order r, z, n against Keras' z, r, h:
  ``bias[0]`` is ``b_ih`` and ``bias[1]`` is ``b_hh``, both reordered. ``reset_after=False`` has
  no torch equivalent.
- RNN: ``nn.RNN(nonlinearity=a)`` is ``SimpleRNN(activation=a)``; ``bias = b_ih + b_hh``.

A ``bidirectional=True`` module maps onto a Bidirectional wrapper (any object with
``forward_layer`` and ``backward_layer``; torch's ``*_reverse`` weights are the backward layer's),
a ``num_layers=N`` module onto a list of N layers (``*_l0`` ... ``*_l{N-1}``). Targets may be kzoo
or Keras ``LSTM``/``GRU``/``SimpleRNN`` layers or their cells. ``batch_first`` and ``dropout``
carry no weights and are ignored.

torch is not imported at import time: modules are recognised by ``state_dict()`` and ``mode``,
tensors converted by ``.detach().cpu().numpy()``; only ``to_torch`` imports torch, to copy into
the module's parameters.
"""

import re
from collections.abc import Mapping

import keras
import numpy as np

from kzoo.layers.gru import GRUCell
from kzoo.layers.lstm import LSTMCell
from kzoo.layers.simple_rnn import SimpleRNNCell

# torch.nn.RNNBase.mode -> our cell kind.
_TORCH_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}
_TORCH_NAMES = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN"}
_KERAS_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
_ARTICLES = {"lstm": "an", "gru": "a", "rnn": "a"}
_N_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# Keras' GRU gate block k is torch's block _GRU_ORDER[k] (Keras z, r, h; torch r, z, n). The
# permutation is a swap, so it is its own inverse and serves both directions.
_GRU_ORDER = (1, 0, 2)
_PARAMETER = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


# -- reading the two sides ----------------------------------------------------------------------
def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _torch_config(module, function):
    """The weight-relevant arguments of a torch RNN module (``None`` for a plain mapping)."""
    mode = getattr(module, "mode", None)
    if not callable(getattr(module, "state_dict", None)) or mode not in _TORCH_MODES:
        raise TypeError(f"{function}: expected a torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN "
                        f"module{' or a state_dict mapping' if function == 'from_torch' else ''}"
                        f", got {type(module).__name__}")
    return {
        "kind": _TORCH_MODES[mode],
        "num_layers": int(module.num_layers),
        "bidirectional": bool(module.bidirectional),
        "proj_size": int(getattr(module, "proj_size", 0) or 0),
        "bias": bool(module.bias),
        "nonlinearity": "relu" if mode == "RNN_RELU" else "tanh",
    }


def _read_torch(source, prefix):
    """``(weights, config)``: the torch parameters as NumPy arrays keyed by torch's names."""
    if isinstance(source, Mapping):
        config = None
        items = [(key[len(prefix):], value) for key, value in source.items()
                 if key.startswith(prefix)]
    else:
        config = _torch_config(source, "from_torch")
        items = source.state_dict().items()
    weights = {}
    for name, value in items:
        if _PARAMETER.match(name) is None:
            raise ValueError(f"from_torch: '{prefix}{name}' is not a parameter of a single "
                             f"torch.nn.LSTM/GRU/RNN (expected names such as 'weight_ih_l0', "
                             f"'bias_hh_l0_reverse'; pass `prefix=` to select one module's "
                             f"parameters from a larger state_dict)")
        weights[name] = _to_numpy(value)
    if not weights:
        raise ValueError(f"from_torch: no torch RNN parameters found"
                         f"{f' under prefix {prefix!r}' if prefix else ''}")
    if config is None:
        indices = sorted({int(_PARAMETER.match(name).group(2)) for name in weights})
        if indices != list(range(len(indices))):
            raise ValueError(f"from_torch: the state_dict has parameters of torch layers "
                             f"{indices}; expected layers 0 to {len(indices) - 1}")
        config = {"num_layers": len(indices),
                  "bidirectional": any(name.endswith("_reverse") for name in weights)}
    return weights, config


def _cell_kind(cell):
    if isinstance(cell, (LSTMCell, keras.layers.LSTMCell)):
        return "lstm"
    if isinstance(cell, (GRUCell, keras.layers.GRUCell)):
        return "gru"
    if isinstance(cell, (SimpleRNNCell, keras.layers.SimpleRNNCell)):
        return "rnn"
    return None


def _describe(layer):
    return f"{type(layer).__name__} '{getattr(layer, 'name', '?')}'"


def _activation_name(function):
    return getattr(function, "__name__", repr(function))


def _check_cell(cell, kind, where):
    """Refuse a cell whose computation torch cannot express (the weights would load, the outputs
    would not match)."""
    problems = []
    if kind == "lstm":
        if not getattr(cell, "use_forget_gate", True):
            problems.append("use_forget_gate=False")
        if getattr(cell, "peephole", False):
            problems.append("peephole=True")
        if getattr(cell, "layer_norm", False):
            problems.append("layer_norm=True")
    if kind == "gru" and not cell.reset_after:
        problems.append("reset_after=False (torch's GRU is the reset_after=True form: the reset "
                        "gate multiplies W_hn h + b_hn after the matmul)")
    if kind in ("lstm", "gru"):
        if cell.activation is not keras.activations.tanh:
            problems.append(f"activation={_activation_name(cell.activation)!r} "
                            f"(torch uses tanh)")
        if cell.recurrent_activation is not keras.activations.sigmoid:
            problems.append(f"recurrent_activation="
                            f"{_activation_name(cell.recurrent_activation)!r} "
                            f"(torch uses sigmoid)")
    elif cell.activation not in (keras.activations.tanh, keras.activations.relu):
        problems.append(f"activation={_activation_name(cell.activation)!r} "
                        f"(torch.nn.RNN has tanh or relu)")
    if problems:
        raise ValueError(f"{where} has no PyTorch equivalent: {', '.join(problems)}")


def _directions(target, where):
    """``[(suffix, cell, kind, where)]`` for the one torch layer ``target`` stands for."""
    if hasattr(target, "forward_layer") and hasattr(target, "backward_layer"):
        return [("", *_cell_of(target.forward_layer, f"{where}.forward_layer")),
                ("_reverse", *_cell_of(target.backward_layer, f"{where}.backward_layer"))]
    return [("", *_cell_of(target, where))]


def _cell_of(layer, where):
    cell = getattr(layer, "cell", layer)
    kind = _cell_kind(cell)
    if kind is None:
        raise ValueError(f"{where}: expected a kzoo or Keras LSTM, GRU or SimpleRNN layer (or "
                         f"cell), or a Bidirectional of one, got {type(layer).__name__}")
    if hasattr(cell, "step_input_rank") and cell.step_input_rank() != 2:
        raise ValueError(f"{where} is convolutional (steps of rank {cell.step_input_rank()}); "
                         f"only dense cells have a torch.nn.LSTM/GRU/RNN equivalent")
    _check_cell(cell, kind, where)
    return cell, kind, where


def _targets(layer, function):
    if isinstance(layer, (list, tuple)):
        if not layer:
            raise ValueError(f"{function}: got an empty list of layers")
        return [(target, f"layers[{i}] ({_describe(target)})") for i, target in enumerate(layer)]
    return [(layer, _describe(layer))]


def _check_structure(targets, config, function, torch_side):
    """The number of layers and directions agree; returns each target's directions."""
    if len(targets) != config["num_layers"]:
        raise ValueError(
            f"{function}: {torch_side} has num_layers={config['num_layers']}, got "
            f"{len(targets)} kzoo layer(s); pass a list with one layer per torch layer")
    plan = []
    for target, where in targets:
        directions = _directions(target, where)
        bidirectional = len(directions) == 2
        if bidirectional != config["bidirectional"]:
            expected = ("a Bidirectional wrapper (forward_layer/backward_layer)"
                        if config["bidirectional"] else "a single-direction layer")
            raise ValueError(f"{function}: {torch_side} is "
                             f"{'' if config['bidirectional'] else 'not '}bidirectional, so "
                             f"{where} must be {expected}")
        for _, cell, kind, cell_where in directions:
            if "kind" not in config:
                continue
            if config["kind"] != kind:
                torch_kind = config["kind"]
                raise ValueError(f"{function}: {torch_side} maps onto {_ARTICLES[torch_kind]} "
                                 f"{_KERAS_NAMES[torch_kind]} layer, but {cell_where} is "
                                 f"{_ARTICLES[kind]} {_KERAS_NAMES[kind]}")
            if kind == "rnn" and _activation_name(cell.activation) != config["nonlinearity"]:
                raise ValueError(f"{function}: {cell_where} has activation "
                                 f"{_activation_name(cell.activation)!r} but {torch_side} has "
                                 f"nonlinearity={config['nonlinearity']!r}")
            proj_units = getattr(cell, "proj_units", None) or 0
            if kind == "lstm" and proj_units != config["proj_size"]:
                raise ValueError(f"{function}: {cell_where} has proj_units="
                                 f"{proj_units or None} but {torch_side} has "
                                 f"proj_size={config['proj_size']}")
        plan.append((target, directions))
    return plan


def _build(target, input_features):
    """Build an unbuilt target for torch's input size (a built one is checked, not rebuilt)."""
    if getattr(target, "built", False):
        return
    if hasattr(target, "forward_layer") or hasattr(target, "cell"):
        target.build((None, None, input_features))
    else:
        target.build((None, input_features))


# -- the mapping for one direction of one layer ---------------------------------------------------
def _gate_blocks(array, order, units):
    """Reorder the gate blocks of ``array``'s first axis (torch's gate axis)."""
    if order is None:
        return array
    return np.concatenate([array[k * units:(k + 1) * units] for k in order], axis=0)


def _keras_from_torch(cell, kind, where, weights, suffix, used):
    """``[(variable, value)]`` loading torch's ``*{suffix}`` parameters into ``cell``."""
    units = cell.units
    proj_units = (getattr(cell, "proj_units", None) or 0) if kind == "lstm" else 0
    gates = _N_GATES[kind] * units
    input_features = cell.kernel.shape[0]

    def take(name, shape, required=True):
        key = name + suffix
        if key not in weights:
            if required:
                raise ValueError(f"from_torch: {where} needs torch parameter '{key}', which is "
                                 f"missing")
            return None
        used.add(key)
        value = weights[key]
        if value.shape != shape:
            raise ValueError(
                f"from_torch: torch '{key}' has shape {value.shape}, but {where} "
                f"({_KERAS_NAMES[kind]} with units={units}, input features={input_features}"
                f"{f', proj_units={proj_units}' if proj_units else ''}) needs {shape}")
        return value

    w_ih = take("weight_ih", (gates, input_features))
    w_hh = take("weight_hh", (gates, proj_units or units))
    b_ih = take("bias_ih", (gates,), required=False)
    b_hh = take("bias_hh", (gates,), required=False)
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"from_torch: torch has only one of 'bias_ih{suffix}' and "
                         f"'bias_hh{suffix}'; expected both or neither")
    order = _GRU_ORDER if kind == "gru" else None
    assignments = [(cell.kernel, _gate_blocks(w_ih, order, units).T),
                   (cell.recurrent_kernel, _gate_blocks(w_hh, order, units).T)]
    if cell.use_bias:
        if b_ih is None:  # torch bias=False: the exact equivalent is a zero bias
            b_ih = b_hh = np.zeros((gates,), np.float32)
        if kind == "gru":
            bias = np.stack([_gate_blocks(b_ih, order, units), _gate_blocks(b_hh, order, units)])
        else:
            # Summed in float64 and rounded once to the variable's dtype.
            bias = b_ih.astype(np.float64) + b_hh
        assignments.append((cell.bias, bias))
    elif b_ih is not None:
        raise ValueError(f"from_torch: {where} has use_bias=False but torch has biases "
                         f"'bias_ih{suffix}'/'bias_hh{suffix}'")
    if proj_units:
        w_hr = take("weight_hr", (proj_units, units), required=False)
        if w_hr is None:
            raise ValueError(f"from_torch: {where} has proj_units={proj_units} but torch has no "
                             f"'weight_hr{suffix}' (the module needs proj_size={proj_units})")
        assignments.append((cell.projection_kernel, w_hr.T))
    elif "weight_hr" + suffix in weights:
        raise ValueError(f"from_torch: torch has 'weight_hr{suffix}' (proj_size="
                         f"{weights['weight_hr' + suffix].shape[0]}) but {where} has no "
                         f"projection; give it proj_units=")
    return assignments


def _torch_from_keras(cell, kind, suffix):
    """torch's ``*{suffix}`` parameters of ``cell``, in torch's state_dict order."""
    units = cell.units
    order = _GRU_ORDER if kind == "gru" else None
    numpy = keras.ops.convert_to_numpy
    kernel, recurrent = numpy(cell.kernel), numpy(cell.recurrent_kernel)
    parameters = {
        "weight_ih" + suffix: _gate_blocks(kernel.T, order, units),
        "weight_hh" + suffix: _gate_blocks(recurrent.T, order, units),
    }
    if cell.use_bias:
        bias = numpy(cell.bias)
        if kind == "gru":
            parameters["bias_ih" + suffix] = _gate_blocks(bias[0], order, units)
            parameters["bias_hh" + suffix] = _gate_blocks(bias[1], order, units)
        else:
            parameters["bias_ih" + suffix] = bias
            parameters["bias_hh" + suffix] = np.zeros_like(bias)
    if kind == "lstm" and getattr(cell, "proj_units", None):
        parameters["weight_hr" + suffix] = numpy(cell.projection_kernel).T
    return {name: np.ascontiguousarray(value) for name, value in parameters.items()}


# -- public API ---------------------------------------------------------------------------------
def from_torch(source, layer, prefix=""):
    """Load a torch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (or its ``state_dict``) into ``layer``.

    ``layer`` is a kzoo/Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` (or cell), a Bidirectional of
    one for ``bidirectional=True``, or a list of those, one per torch layer, for
    ``num_layers > 1``. An unbuilt layer is built for torch's input size. ``prefix`` selects one
    module's parameters from a larger state_dict (``prefix="encoder.rnn."``). Every shape is
    checked before any weight is written, so a ValueError leaves ``layer`` unchanged.

    Args:
      source: a torch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` module, or a state_dict
        (``{name: tensor or ndarray}``).
      layer: the kzoo/Keras layer (or cell, Bidirectional, or list of layers) to load into.
      prefix: the prefix of the module's names in a larger state_dict; default ``""``.

    Returns:
      ``layer``, with torch's weights.

    Raises:
      ValueError: the structures differ (kind, sizes, number of layers, directions,
        activation, bias), a torch parameter is missing or has no place in ``layer``.

    Example:

    ```python
    import numpy as np
    import torch
    import kzoo

    torch_lstm = torch.nn.LSTM(3, 4, batch_first=True)
    layer = kzoo.layers.from_torch(torch_lstm, kzoo.layers.LSTM(4, return_sequences=True))
    x = np.random.rand(2, 5, 3).astype("float32")
    np.testing.assert_allclose(layer(x), torch_lstm(torch.from_numpy(x))[0].detach(),
                               atol=1e-5)
    ```
    """
    weights, config = _read_torch(source, prefix)
    torch_side = (f"the torch module ({_TORCH_NAMES[config['kind']]})" if "kind" in config
                  else "the torch state_dict")
    plan = _check_structure(_targets(layer, "from_torch"), config, "from_torch", torch_side)
    assignments, used = [], set()
    for index, (target, directions) in enumerate(plan):
        if f"weight_ih_l{index}" not in weights:
            raise ValueError(f"from_torch: {torch_side} has no 'weight_ih_l{index}'")
        _build(target, weights[f"weight_ih_l{index}"].shape[1])
        for suffix, cell, kind, where in directions:
            assignments += _keras_from_torch(cell, kind, where, weights, f"_l{index}{suffix}",
                                             used)
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"from_torch: {torch_side} has parameters the kzoo layer(s) have no "
                         f"place for: {unused}")
    for variable, value in assignments:
        variable.assign(value)
    return layer


def to_torch_state_dict(layer, prefix=""):
    """The weights of ``layer`` (as for :func:`from_torch`) as ``{torch name: ndarray}``.

    The dict loads into the matching torch module with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``; a layer with
    ``use_bias=False`` gives no bias entries (the module needs ``bias=False``).

    Args:
      layer: a built kzoo/Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` (or cell, Bidirectional, or
        list of layers).
      prefix: put before every name (``"encoder.rnn."``); default ``""``.

    Returns:
      ``{torch parameter name: float32 ndarray}``, e.g. ``weight_ih_l0``, ``bias_hh_l0``.

    Raises:
      ValueError: ``layer`` is not built, or is not a layer torch has.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.GRU(4)
    layer(tf.zeros((1, 2, 3)))                      # build it
    state_dict = kzoo.layers.to_torch_state_dict(layer)
    state_dict["weight_hh_l0"].shape                # (12, 4): torch's r, z, n rows
    ```
    """
    parameters = {}
    for index, (target, where) in enumerate(_targets(layer, "to_torch_state_dict")):
        for suffix, cell, kind, cell_where in _directions(target, where):
            if not cell.built:
                raise ValueError(f"to_torch_state_dict: {cell_where} is not built; build it or "
                                 f"call it on data first")
            parameters.update(_torch_from_keras(cell, kind, f"_l{index}{suffix}"))
    return {prefix + name: value for name, value in parameters.items()}


def to_torch(layer, module):
    """Copy the weights of ``layer`` into the torch RNN ``module``'s parameters, in place.

    ``module`` must have the same structure (kind, sizes, ``num_layers``, ``bidirectional``,
    ``proj_size``). A layer without bias fills torch's biases with zeros; a torch module with
    ``bias=False`` accepts only an all-zero kzoo bias.

    Args:
      layer: a built kzoo/Keras ``LSTM``, ``GRU`` or ``SimpleRNN`` (or cell, Bidirectional, or
        list of layers).
      module: the torch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` to copy into.

    Returns:
      ``module``, with the weights of ``layer``.

    Raises:
      ValueError: the structures or shapes differ, or a nonzero bias meets ``bias=False``.

    Example:

    ```python
    import tensorflow as tf
    import torch
    import kzoo

    layer = kzoo.layers.SimpleRNN(4)
    layer(tf.zeros((1, 2, 3)))                      # build it
    module = kzoo.layers.to_torch(layer, torch.nn.RNN(3, 4, batch_first=True))
    ```
    """
    config = _torch_config(module, "to_torch")
    torch_side = f"the torch module ({_TORCH_NAMES[config['kind']]})"
    _check_structure(_targets(layer, "to_torch"), config, "to_torch", torch_side)
    state = to_torch_state_dict(layer)
    parameters = dict(module.named_parameters())
    values = {}
    for name, parameter in parameters.items():
        shape = tuple(parameter.shape)
        if name in state:
            value = state.pop(name)
        elif name.startswith("bias_"):  # the kzoo layer has use_bias=False
            value = np.zeros(shape, np.float32)
        else:
            raise ValueError(f"to_torch: the kzoo layer(s) have no weight for torch parameter "
                             f"'{name}'")
        if value.shape != shape:
            raise ValueError(f"to_torch: torch '{name}' has shape {shape}, the kzoo layer(s) "
                             f"give {value.shape}; the sizes (units, input features, proj_size) "
                             f"must match")
        values[name] = value
    for name, value in state.items():
        if name.startswith("bias_") and not np.any(value):
            continue  # a zero bias is exactly torch's bias=False
        raise ValueError(f"to_torch: {torch_side} has no parameter '{name}' for the kzoo "
                         f"weights (a nonzero bias needs a torch module with bias=True)")
    import torch  # only here: the caller already has a torch module, so torch is installed

    with torch.no_grad():
        for name, value in values.items():
            # In place, so torch's flattened (cuDNN) weight views stay the same tensors.
            parameters[name].copy_(torch.as_tensor(value))
    return module
