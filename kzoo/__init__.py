"""kzoo: a Keras 3 / TensorFlow model zoo of recurrent networks.

    model = kzoo.build("seq2seq_attention")
    kzoo.list_models()
    model = kzoo.convert(keras_model)     # a Keras model with kzoo's recurrent layers
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

_REGISTRY_NAMES = ("build", "list_models", "model_info")
__all__ = ["build", "convert", "list_models", "model_info", "layers"]


def __getattr__(name):
    # Only reached while the `kzoo` command defers the imports below (see there).
    if name in _REGISTRY_NAMES:
        from kzoo.models import registry

        return getattr(registry, name)
    if name == "convert":
        from kzoo.conversion import convert

        return convert
    if name == "layers":
        import kzoo.layers

        return kzoo.layers
    raise AttributeError(f"module 'kzoo' has no attribute {name!r}")


# The `kzoo` console script imports this package before kzoo.cli runs: importing TensorFlow
# here would cost seconds before a usage error and print TensorFlow's C++ log lines. The command
# imports it itself once its arguments are checked, with those lines silenced (kzoo.cli).
# Everywhere else the layers and the zoo are imported at once, which registers with
# keras.saving every class a kzoo model file holds (the layers; Seq2Seq, its samplers, loss and
# metric), so `keras.saving.load_model` needs nothing but `import kzoo`; TensorFlow first,
# without its C++ runtime's import-time log lines (kzoo.quiet).
if _os.path.basename(_sys.argv[0] if _sys.argv else "") != "kzoo":
    from kzoo import quiet  # noqa: E402

    quiet.import_tensorflow()
    from kzoo import layers  # noqa: E402
    from kzoo.conversion import convert  # noqa: E402
    from kzoo.models import zoo as _zoo  # noqa: E402,F401
    from kzoo.models.registry import build, list_models, model_info  # noqa: E402
