"""kzoo: a Keras 3 / TensorFlow model zoo of recurrent networks."""

__version__ = "0.1.0"

from kzoo import layers  # noqa: E402
