"""kzoo.models: the registry and the builders of the five RNN I/O patterns."""

from kzoo.models.registry import build, list_models, model_info, register_model, PATTERNS
from kzoo.models.registry import example_batch, compile_args
