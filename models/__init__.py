"""kzoo.models: the registry of the zoo, the seq2seq model, its loss, samplers and searches.

    config = {"source_vocab_size": 40, "target_vocab_size": 30}
    model = kzoo.build("seq2seq_attention", **config)
    model.compile("adam", **kzoo.models.compile_args("seq2seq_attention", **config))
    inputs, targets = kzoo.models.example_batch("seq2seq_attention", config)
    kzoo.list_models("many_to_one"), kzoo.model_info("many_to_one_lstm")

The 32 registered builders (``many_to_one_lstm``...) are reached by name through
:func:`build`, which checks the config: they live in their pattern's module
(``kzoo.models.many_to_one``...), as do the helpers of one pattern
(``kzoo.models.one_to_many.generate``, ``kzoo.models.many_to_many.reset_states`` and
``free_running_model``). The guide: docs/zoo.md; coming from ``tfa.seq2seq``:
docs/tfa_seq2seq_migration.md.
"""

import importlib

from kzoo.models.registry import build, compile_args, example_batch, list_models, \
    model_info, register_model, ModelInfo, PATTERNS  # noqa: F401 (register_model: for zoo authors)

# Imported on first use: the registry answers without TensorFlow (the `kzoo` command lists and
# describes models before it imports TensorFlow), these names need it.
_LAZY = {
    "kzoo.models.seq2seq": ("Seq2Seq", "UnknownTokensWarning", "default_decode_length",
                            "MAX_SOURCE_UNITS"),
    "kzoo.models.sampling": ("SequenceLoss", "sequence_loss", "SequenceAccuracy",
                             "TeacherForcingSampler", "ScheduledSampler",
                             "ScheduledOutputSampler"),
    "kzoo.models.token_choice": ("greedy_choice", "TokenSampler"),
    "kzoo.models.decoding": ("greedy_search", "beam_search", "tile_batch", "length_penalty",
                             "coverage_penalty", "gather_tree", "gather_tree_from_array",
                             "MAX_DECODE_LENGTH"),
}
_LAZY_MODULES = {name: module for module, names in _LAZY.items() for name in names}

# register_model stays importable but is not on the face: a model's arguments must be explained
# in kzoo.models.arguments and its registration lasts for the process, so adding a model is a
# change to the zoo (kzoo.models.registry says how), not a call users make.
__all__ = ["build", "list_models", "model_info", "compile_args", "example_batch", "ModelInfo",
           "PATTERNS", *_LAZY_MODULES]


def __getattr__(name):
    if name in _LAZY_MODULES:
        return getattr(importlib.import_module(_LAZY_MODULES[name]), name)
    raise AttributeError(f"module 'kzoo.models' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
