"""kzoo: a Keras 3 / TensorFlow model zoo of recurrent networks.

    model = kzoo.build("seq2seq_attention")
    kzoo.list_models()
"""

__version__ = "0.1.0"

from kzoo import layers  # noqa: E402
from kzoo.models.registry import build, list_models, model_info  # noqa: E402
