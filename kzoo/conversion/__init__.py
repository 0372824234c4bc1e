"""kzoo.conversion: a Keras model, or a model file, rebuilt with kzoo's recurrent layers.

    model = kzoo.convert(keras_model)                         # kzoo.conversion.model
    kzoo.conversion.convert_file("lstm.keras", "lstm.kzoo.keras")   # kzoo.conversion.files

Guide: docs/coming_from_keras.md.
"""

from kzoo.conversion.errors import (ConversionError, NoRecurrentLayerWarning,
                                    UnconvertedLayerWarning)
from kzoo.conversion.model import convert

__all__ = ["ConversionError", "NoRecurrentLayerWarning", "UnconvertedLayerWarning", "convert"]
