"""One Keras layer -> its kzoo equivalent: the config translated, the weights copied after.

``convert_layer(layer)`` returns the layer ``kzoo.convert`` puts in the place of ``layer`` in the
cloned model: kzoo's sequence layer for Keras' ``SimpleRNN``, ``LSTM``, ``GRU``, ``ConvLSTM1D/2D/
3D`` and ``RNN`` over Keras' standard cells; a ``kzoo.layers.Bidirectional`` (and a
``TimeDistributed``) around the converted inner layer; a fresh copy of any other layer (built from
its config, as ``keras.models.clone_model`` does), but ``kzoo.layers.TimeDistributed`` in the place
of Keras' (which needs Flex ops in TFLite). ``copy_weights(old, new)`` then gives the new
layer the old one's values, once the clone has built it.
"""

import keras

from kzoo.conversion.errors import ConversionError

def _kzoo_layers():
    import kzoo.layers

    return kzoo.layers


SEQUENCE_LAYERS = ("SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
STANDARD_CELLS = (keras.layers.SimpleRNNCell, keras.layers.LSTMCell, keras.layers.GRUCell)


def _sequence_classes():
    """{Keras sequence layer class: kzoo's namesake} (they take the same config)."""
    kzoo_layers = _kzoo_layers()
    return {getattr(keras.layers, name): getattr(kzoo_layers, name) for name in SEQUENCE_LAYERS}


def describe(layer):
    cls = type(layer)
    return f"layer {layer.name!r} ({cls.__module__.split('.src')[0]}.{cls.__qualname__})"


def is_kzoo_layer(layer):
    return type(layer).__module__.startswith("kzoo.")


def is_keras_recurrent(layer):
    """A Keras recurrent layer (any ``keras.layers.RNN``, a Keras ``Bidirectional`` or
    ``TimeDistributed`` around one), i.e. one that exports with Flex ops unless converted."""
    if is_kzoo_layer(layer):
        return False
    if isinstance(layer, keras.layers.RNN):
        return True
    if isinstance(layer, keras.layers.Bidirectional):
        return is_keras_recurrent(layer.forward_layer) or is_keras_recurrent(layer.backward_layer)
    if isinstance(layer, keras.layers.TimeDistributed):
        return is_keras_recurrent(layer.layer)
    if isinstance(layer, keras.Model):
        return any(is_keras_recurrent(inner) for inner in layer.layers)
    return False


def _from_config(kzoo_class, config, layer):
    try:
        return kzoo_class.from_config(config)
    except (ValueError, TypeError) as error:
        raise ConversionError(f"kzoo.convert: cannot build kzoo.layers.{kzoo_class.__name__} "
                              f"from the config of {describe(layer)}: {error}") from error


def _convert_rnn(layer):
    """``keras.layers.RNN(cell)`` over standard cells: kzoo.layers.RNN, which maps each of them
    to kzoo's cell with the same config and weights."""
    cell = layer.cell
    cells = cell.cells if isinstance(cell, keras.layers.StackedRNNCells) else [cell]
    custom = [c for c in cells if type(c) not in STANDARD_CELLS]
    if custom:
        raise ConversionError(
            f"kzoo.convert: {describe(layer)} runs the cell {describe(custom[0])}, which kzoo "
            f"cannot replace (it replaces keras.layers.SimpleRNNCell, LSTMCell, GRUCell and "
            f"StackedRNNCells of them); write the cell as a kzoo.layers.RecurrentCell, or pass "
            f"strict=False to keep the layer as it is")
    return _from_config(_kzoo_layers().RNN, layer.get_config(), layer)


def _convert_bidirectional(layer, strict):
    forward = convert_layer(layer.forward_layer, strict)
    backward = convert_layer(layer.backward_layer, strict)
    if not is_kzoo_layer(forward) or not is_kzoo_layer(backward):
        return None
    return _kzoo_layers().Bidirectional(forward, merge_mode=layer.merge_mode,
                                        backward_layer=backward, name=layer.name,
                                        dtype=layer.dtype_policy, trainable=layer.trainable)


def copy_of(layer):
    """A fresh layer from ``layer``'s config (``keras.models.clone_model``'s default)."""
    return layer.__class__.from_config(layer.get_config())


def convert_layer(layer, strict=True):
    """The layer that takes the place of ``layer`` in the converted model (not yet built).

    Args:
      layer: a layer of the Keras model.
      strict: raise on a recurrent layer kzoo cannot replace; False: return a copy of it.

    Returns:
      kzoo's equivalent of a Keras recurrent layer, else a copy of ``layer``.

    Raises:
      ConversionError: with ``strict``, a recurrent layer kzoo cannot replace (a custom cell or
        recurrent layer, a ``Bidirectional`` around one); its name and class are in the message.
    """
    if type(layer) is keras.layers.TimeDistributed and not is_keras_recurrent(layer):
        # Keras' maps its layer over a dynamic time axis with TensorList ops (Flex in TFLite).
        return _kzoo_layers().TimeDistributed(copy_of(layer.layer), name=layer.name,
                                              dtype=layer.dtype_policy,
                                              trainable=layer.trainable)
    if not is_keras_recurrent(layer):
        return copy_of(layer)
    try:
        kzoo_class = _sequence_classes().get(type(layer))
        if kzoo_class is not None:
            return _from_config(kzoo_class, layer.get_config(), layer)
        if type(layer) is keras.layers.RNN:
            return _convert_rnn(layer)
        if isinstance(layer, keras.layers.Bidirectional):
            converted = _convert_bidirectional(layer, strict=True)
            if converted is not None:
                return converted
        if isinstance(layer, keras.layers.TimeDistributed):
            return _kzoo_layers().TimeDistributed(convert_layer(layer.layer, strict=True),
                                                name=layer.name, dtype=layer.dtype_policy,
                                                trainable=layer.trainable)
        raise ConversionError(
            f"kzoo.convert: {describe(layer)} is a recurrent layer kzoo cannot replace (it "
            f"replaces keras.layers.SimpleRNN, LSTM, GRU, ConvLSTM1D/2D/3D, Bidirectional and "
            f"RNN over Keras' standard cells); pass strict=False to keep it as it is")
    except ConversionError as error:
        if strict:
            if isinstance(layer, (keras.layers.Bidirectional, keras.layers.TimeDistributed)) \
                    and describe(layer) not in str(error):
                raise ConversionError(f"{error} (inside {describe(layer)})") from error
            raise
        return copy_of(layer)


def _inner_pairs(old, new):
    """The (old, new) layer pairs whose values are copied: wrappers are copied through their
    inner layers, recurrent layers through their cells (kzoo's stateful layers also hold their
    states as variables, Keras' do not)."""
    if isinstance(old, keras.layers.Bidirectional) and isinstance(new, keras.layers.Bidirectional):
        return _inner_pairs(old.forward_layer, new.forward_layer) + \
            _inner_pairs(old.backward_layer, new.backward_layer)
    if isinstance(old, keras.layers.TimeDistributed) and \
            isinstance(new, keras.layers.TimeDistributed):
        return _inner_pairs(old.layer, new.layer)
    if getattr(old, "cell", None) is not None and getattr(new, "cell", None) is not None \
            and (is_kzoo_layer(new) != is_kzoo_layer(old)):
        return [(old.cell, new.cell, old, new)]
    return [(old, new, old, new)]


def copy_weights(old, new):
    """Gives ``new`` (the converted layer, built) the values of ``old``'s weights, and of its
    current states when both are stateful."""
    if not isinstance(old, keras.layers.Layer):   # an op of the graph (keras.ops.*): no weights
        return
    for source, target, old_layer, new_layer in _inner_pairs(old, new):
        try:
            target.set_weights(source.get_weights())
        except ValueError as error:
            raise ConversionError(f"kzoo.convert: the weights of {describe(old_layer)} do not "
                                  f"fit {describe(new_layer)}: {error}") from error
        old_states = getattr(old_layer, "states", None) \
            if getattr(old_layer, "stateful", False) else None
        new_states = getattr(new_layer, "states", None)
        if old_states and new_states and len(old_states) == len(new_states):
            for variable, value in zip(new_states, old_states):
                if tuple(variable.shape) == tuple(value.shape):
                    variable.assign(value)
