"""``kzoo.convert``: a Keras model rebuilt with kzoo's recurrent layers, carrying its weights."""

import warnings

import keras

from kzoo.conversion.errors import (ConversionError, NoRecurrentLayerWarning,
                                    UnconvertedLayerWarning)
from kzoo.conversion.layers import (convert_layer, copy_weights, describe, is_keras_recurrent,
                                    is_kzoo_layer)


def convert(model, strict=True):
    """A copy of a Keras model whose recurrent layers are kzoo's, with the same weights.

    Every ``keras.layers.SimpleRNN``, ``LSTM``, ``GRU``, ``ConvLSTM1D/2D/3D``, ``Bidirectional``
    and ``keras.layers.RNN`` over Keras' ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell`` (or
    ``StackedRNNCells`` of them) is replaced by kzoo's layer of the same name with the same
    configuration and weights; every other layer is copied with its weights. Sequential and
    functional models are rebuilt with ``keras.models.clone_model`` (nested models too, layer
    names kept), so masks from ``Embedding(mask_zero=True)``, ``initial_state`` taken from
    another layer's states, ``return_state`` and ``TimeDistributed`` carry over; stateful layers
    stay stateful (with their current states). The original model is not changed, and the new
    one computes the same outputs (to float32 rounding, about 1e-6). A compiled model's copy is
    compiled the same way (a fresh optimizer).

    What changes: the model exports to a TFLite file with builtin ops only
    (``kzoo.export.tflite``), which ``keras.layers.LSTM`` cannot, and runs on kzoo's scan engine.
    Keras arguments that only choose how the loop runs (``unroll``, ``implementation``,
    ``use_cudnn``) are dropped where kzoo's layer does not take them.

    Args:
      model: a built ``keras.Sequential`` or functional ``keras.Model``.
      strict: raise on a recurrent layer kzoo cannot replace (a custom cell or recurrent
        layer); False keeps such a layer as it is, with an :class:`UnconvertedLayerWarning`.

    Returns:
      A new ``keras.Model`` (a ``keras.Sequential`` for a Sequential).

    Raises:
      TypeError: ``model`` is not a ``keras.Model``.
      ConversionError: (a ``ValueError``) ``model`` is a subclassed model or not built, a
        recurrent layer is called at two places of the model, or (with ``strict``) a recurrent
        layer kzoo cannot replace; the message names the layer and its class.

    Warns:
      NoRecurrentLayerWarning: ``model`` has no recurrent layer; the copy is returned.
      UnconvertedLayerWarning: with ``strict=False``, for each layer kept as it was.

    Example:

    ```python
    import keras
    import kzoo

    keras_model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4),
                                    keras.layers.Dense(1)])
    model = kzoo.convert(keras_model)
    type(model.layers[0])           # kzoo.layers.LSTM
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"kzoo.convert: `model` must be a keras.Model (Sequential or "
                        f"functional), got {type(model).__name__}")
    _check_convertible(model)
    pairs = []

    def clone_function(layer):
        new = convert_layer(layer, strict=strict)
        pairs.append((layer, new))
        return new

    try:
        converted = keras.models.clone_model(model, input_tensors=_named_inputs(model),
                                             clone_function=clone_function, recursive=True)
    except ConversionError:
        raise
    except (ValueError, TypeError) as error:
        raise ConversionError(f"kzoo.convert: could not rebuild model {model.name!r}: "
                              f"{error}") from error
    for old, new in pairs:
        copy_weights(old, new)
    if model.compiled and not converted.compiled:
        converted.compile_from_config(model.get_compile_config())
    kept = [old for old, new in pairs if is_keras_recurrent(old) and not is_kzoo_layer(new)
            and not isinstance(new, keras.layers.TimeDistributed)]
    kept += [old for old, new in pairs if isinstance(new, keras.layers.TimeDistributed)
             and is_keras_recurrent(new)]
    for old in kept:
        warnings.warn(f"kzoo.convert: kept {describe(old)} as it is (strict=False); the model "
                      f"still needs Flex ops to export to TFLite", UnconvertedLayerWarning,
                      stacklevel=2)
    if not any(is_keras_recurrent(old) for old, _ in pairs):
        warnings.warn(f"kzoo.convert: model {model.name!r} has no Keras recurrent layer; "
                      f"returning a copy", NoRecurrentLayerWarning, stacklevel=2)
    return converted


def _named_inputs(model):
    """New inputs named as ``model``'s input layers (clone_model would name them after the
    KerasTensors, "keras_tensor_3"), so the exported signatures keep their input names."""
    if isinstance(model, keras.Sequential):
        return None            # a Sequential clones its own InputLayer, name included

    def named(tensor):
        history = getattr(tensor, "_keras_history", None)
        return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype,
                           name=history.operation.name if history else None)

    return keras.tree.map_structure(named, model.input)


def _graphs(model):
    """``model`` and every Sequential or functional model nested in it."""
    yield model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _graphs(layer)


def _check_convertible(model):
    for graph in _graphs(model):
        if not isinstance(graph, (keras.Sequential, keras.src.models.functional.Functional)):
            raise ConversionError(
                f"kzoo.convert: model {graph.name!r} is a subclassed {type(graph).__name__}; "
                f"kzoo.convert rebuilds Sequential and functional models only (build it with "
                f"kzoo.layers in its code instead)")
        if not graph.built or not _inputs(graph):
            raise ConversionError(
                f"kzoo.convert: model {graph.name!r} is not built (it has no weights yet); "
                f"give it an input shape (keras.Input) or call it on a batch first")
        graph = graph._functional if isinstance(graph, keras.Sequential) else graph
        calls = {}
        for nodes in graph._nodes_by_depth.values():
            for node in nodes:
                calls.setdefault(id(node.operation), []).append(node.operation)
        for operations in calls.values():
            layer = operations[0]
            if len(operations) > 1 and is_keras_recurrent(layer):
                raise ConversionError(
                    f"kzoo.convert: {describe(layer)} is called at {len(operations)} places of "
                    f"model {graph.name!r}; a converted model gives each recurrent layer one "
                    f"set of states (to stream them after export): give each call its own "
                    f"layer")


def _inputs(model):
    try:
        return model.inputs
    except (AttributeError, ValueError):
        return None
