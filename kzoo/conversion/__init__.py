"""kzoo.conversion: a Keras model, or a model file, rebuilt with kzoo's recurrent layers.

    model = kzoo.convert(keras_model)                         # kzoo.conversion.model
    kzoo.conversion.convert_file("lstm.keras", "lstm.kzoo.keras")   # kzoo.conversion.files

Guide: docs/coming_from_keras.md.
"""

from kzoo.conversion.errors import (ConversionError, NoRecurrentLayerWarning,
                                    UnconvertedLayerWarning)

__all__ = ["ConversionError", "NoRecurrentLayerWarning", "UnconvertedLayerWarning", "convert"]


def __getattr__(name):
    # Lazily, so that `kzoo convert`/`kzoo export` can check a file name before TensorFlow loads.
    if name == "convert":
        from kzoo.conversion.model import convert

        return convert
    raise AttributeError(f"module 'kzoo.conversion' has no attribute {name!r}")
