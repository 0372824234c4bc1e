"""What :func:`kzoo.convert` raises and warns."""


class ConversionError(ValueError):
    """A Keras model (or model file) that ``kzoo.convert`` cannot turn into a kzoo model; the
    message names the layer and its class, or the file, and what to do."""


class UnconvertedLayerWarning(UserWarning):
    """``kzoo.convert(model, strict=False)`` kept a recurrent layer it cannot replace (a custom
    cell or recurrent layer): the converted model runs, but that layer still exports with Flex
    ops."""


class NoRecurrentLayerWarning(UserWarning):
    """``kzoo.convert`` was given a model with no recurrent layer: it returns a copy."""
