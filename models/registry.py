"""The one registry of kzoo models: ``register_model`` on a builder, ``build(name, **config)``.

A builder is a function whose keyword arguments (all with defaults) are the model's config and
which returns a built ``keras.Model``. Registration records the builder's name, its pattern and
cell, its description (the docstring's first paragraph) and the one-line explanation of each
argument (``kzoo.models.arguments``, also added to the docstring as ``Args:``), so
``list_models`` and ``model_info`` need no model built. Neither needs TensorFlow either: for the
zoo's models whose modules are not imported yet they answer from the static table
``kzoo.models.catalog`` (the ``kzoo`` command lists and describes models without loading
TensorFlow); ``build`` and the training contract below import the zoo.

The training contract every registered model gives (tests/models/test_zoo.py uses it on every
name in ``list_models()``, so a model is tested the day it is registered)::

    @register_model("many_to_one", "lstm", example=my_example, loss=my_loss, metrics=my_metrics)
    def many_to_one_lstm(*, units=64, ...): ...

- ``example(config, batch_size, rng) -> (inputs, targets)``: a batch of random NumPy data with
  the shapes and dtypes ``model.fit(inputs, targets)`` takes for the model built with ``config``
  (the full config: the builder's defaults updated by the overrides); ``rng`` is a
  ``numpy.random.Generator``. ``inputs`` is an array or a tuple of arrays in the order of
  ``model.inputs``. ``kzoo.models.example_batch(name, config, batch_size=, seed=)`` calls it.
- ``loss`` and ``metrics``: what to ``compile`` the model with, each either the value itself or
  ``callable(config)`` returning it. ``kzoo.models.compile_args(name, **config)`` returns
  ``{"loss": ..., "metrics": ...}``. ``build`` returns an uncompiled model; a builder may also
  compile it itself, or attach methods (``generate``...): ``build`` does not touch the model.
"""

import dataclasses
import fnmatch
import functools
import importlib
import inspect
import re
import sys
import textwrap

from kzoo.checks import close_matches
from kzoo.models import arguments

PATTERNS = ("one_to_one", "one_to_many", "many_to_one", "many_to_many", "seq2seq")
_ZOO_MODULE = "kzoo.models.zoo"  # imports every builder module

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What ``kzoo.model_info(name)`` reports about a registered model.

    Attributes:
        name: str, the name ``kzoo.build`` takes.
        pattern: str, one of ``PATTERNS``.
        cell: str, the recurrent cell ("lstm", "gru", "rnn", "jordan", "convlstm") or "mlp".
        description: str, the builder docstring's first paragraph, on one line.
        default_config: dict, every config key and its default, in the builder's order.
        arguments: dict, every config key and its one-line explanation, in the same order.
    """

    name: str
    pattern: str
    cell: str
    description: str
    default_config: dict
    arguments: dict


@dataclasses.dataclass(frozen=True)
class _Registration:
    info: ModelInfo
    builder: object
    example: object
    loss: object
    metrics: object


def _first_paragraph(docstring):
    """The first paragraph of ``docstring``, its lines joined: a model's description."""
    paragraph = re.split(r"\n\s*\n", inspect.cleandoc(docstring or "").strip())[0]
    return " ".join(paragraph.split())


def _explain_all(name, pattern, names):
    explained = {key: arguments.explain(name, pattern, key) for key in names}
    missing = [key for key, line in explained.items() if line is None]
    if missing:
        raise TypeError(f"register_model: builder {name!r} has argument(s) {missing} that "
                        f"kzoo.models.arguments.ARGUMENTS does not explain; add a line for each")
    return explained


def _args_section(explained):
    lines = [textwrap.fill(f"{key}: {line}", 96, initial_indent="    ",
                           subsequent_indent="        ", break_on_hyphens=False)
             for key, line in explained.items()]
    return "\n".join(["Args:", *lines])


def register_model(pattern, cell, *, example=None, loss=None, metrics=None):
    """Register the decorated builder under its function name.

    ``example``, ``loss`` and ``metrics`` are the training contract in the module docstring.
    Every argument of the builder must be explained in ``kzoo.models.arguments``; the
    explanations are appended to the builder's docstring as its ``Args:`` section.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"register_model: pattern must be one of {PATTERNS}, got {pattern!r}")

    def decorator(builder):
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        signature = inspect.signature(builder)
        defaults = {}
        for parameter in signature.parameters.values():
            if parameter.kind is not parameter.KEYWORD_ONLY or \
                    parameter.default is parameter.empty:
                raise TypeError(f"register_model: builder {name!r} must take only keyword-only "
                                f"arguments with defaults (`def {name}(*, units=64, ...)`)")
            defaults[parameter.name] = parameter.default
        explained = _explain_all(name, pattern, defaults)
        doc = inspect.getdoc(builder) or ""
        info = ModelInfo(name=name, pattern=pattern, cell=cell,
                         description=_first_paragraph(doc), default_config=defaults,
                         arguments=explained)
        builder.__doc__ = f"{doc}\n\n{_args_section(explained)}\n" if doc else \
            _args_section(explained)
        _REGISTRY[name] = _Registration(info=info, builder=builder, example=example, loss=loss,
                                        metrics=metrics)
        return builder

    return decorator


@functools.cache
def catalog_infos():
    """``{name: ModelInfo}`` from the static table ``kzoo.models.catalog`` (no TensorFlow):
    what ``model_info`` answers for a zoo model before its module is imported."""
    # Imported here: `python -m kzoo.models.catalog` runs that module as __main__ after the
    # package (and so this module) is imported.
    from kzoo.models import catalog

    infos = {}
    for name, entry in catalog.read().items():
        infos[name] = ModelInfo(
            name=name, pattern=entry["pattern"], cell=entry["cell"],
            description=entry["description"], default_config=dict(entry["default_config"]),
            arguments=_explain_all(name, entry["pattern"], entry["default_config"]))
    return infos


def registered_infos():
    """``{name: ModelInfo}`` of every registered builder, sorted by name (imports the zoo)."""
    _load_zoo()
    return {name: _REGISTRY[name].info for name in sorted(_REGISTRY)}


def _infos():
    live = {name: r.info for name, r in _REGISTRY.items()}
    if _ZOO_MODULE in sys.modules:
        return live
    # The zoo's modules are not imported (the `kzoo` command before it needs TensorFlow).
    return {**catalog_infos(), **live}


def unknown_model_error(name, names, listed_by="kzoo.list_models()"):
    """The ValueError for a ``name`` not among ``names``: the closest names, and ``listed_by``,
    what lists them all (the command line says ``kzoo list``)."""
    close = close_matches(name, sorted(names), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown model {name!r}{hint} ({listed_by} lists all {len(names)})")


def _lookup(name):
    _load_zoo()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise unknown_model_error(name, _REGISTRY)
    return _REGISTRY[name]


def model_info(name):
    """Pattern, cell, description, default config and argument explanations of a model.

    Args:
        name: str, a registered model name (``list_models()``).

    Returns:
        A :class:`ModelInfo`. Answered without importing TensorFlow.

    Raises:
        ValueError: ``name`` is not a registered model (the closest names are suggested).

    Example:

    >>> kzoo.model_info("seq2seq_attention").default_config["units"]
    64
    """
    infos = _infos()
    if not isinstance(name, str) or name not in infos:
        raise unknown_model_error(name, infos)
    return infos[name]


def list_models(pattern=None):
    """Sorted registered names; ``pattern`` is an I/O pattern name or a glob (``"*lstm*"``).

    Answered without importing TensorFlow.
    """
    infos = _infos()
    names = sorted(infos)
    if pattern is None:
        return names
    if pattern in PATTERNS:
        return [n for n in names if infos[n].pattern == pattern]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _check_config(info, config):
    unknown = sorted(set(config) - set(info.default_config))
    if unknown:
        raise ValueError(f"{info.name}: unknown config key(s) {unknown}; accepted keys: "
                         f"{sorted(info.default_config)}")
    return {**info.default_config, **config}


def build(name, **config):
    """Build the registered model ``name`` with its defaults overridden by ``config``."""
    registration = _lookup(name)
    _check_config(registration.info, config)
    return registration.builder(**config)


def example_batch(name, config=None, *, batch_size=2, seed=0):
    """Random ``(inputs, targets)`` that ``build(name, **config)`` can ``fit`` on.

    ``config`` is a dict (not keyword arguments: a model's config may have its own
    ``batch_size``, e.g. a stateful one, whose example batches then have that size).
    """
    import numpy as np

    registration = _lookup(name)
    full_config = _check_config(registration.info, dict(config or {}))
    if registration.example is None:
        raise ValueError(f"{name}: registered without `example=`; see the training contract in "
                         f"kzoo.models.registry")
    return registration.example(full_config, batch_size, np.random.default_rng(seed))


def compile_args(name, **config):
    """``{"loss": ..., "metrics": ...}`` to ``compile`` ``build(name, **config)`` with."""
    registration = _lookup(name)
    full_config = _check_config(registration.info, config)

    def resolve(value):
        return value(full_config) if callable(value) and not _is_keras_object(value) else value

    return {"loss": resolve(registration.loss), "metrics": resolve(registration.metrics)}


def _is_keras_object(value):
    # A keras.losses.Loss / Metric instance is callable too but is the value itself.
    import keras

    return isinstance(value, (keras.losses.Loss, keras.metrics.Metric))


def _load_zoo():
    # Registration happens on import of the builder modules; importing them here (not at the
    # top) keeps the registry importable by the builders themselves, and TensorFlow-free.
    importlib.import_module(_ZOO_MODULE)
