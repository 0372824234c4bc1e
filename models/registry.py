"""The one registry of kzoo models: ``register_model`` on a builder, ``build(name, **config)``.

A builder is a function whose keyword arguments (all with defaults) are the model's config and
which returns a built ``keras.Model``. Registration records the builder's name, its pattern and
cell and its one-line description, so ``list_models`` and ``model_info`` need no model built.

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
import inspect

from kzoo.checks import close_matches

PATTERNS = ("one_to_one", "one_to_many", "many_to_one", "many_to_many", "seq2seq")

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What ``kzoo.model_info(name)`` reports about a registered model."""

    name: str
    pattern: str
    cell: str
    description: str
    default_config: dict
    builder: object = dataclasses.field(repr=False, compare=False)
    example: object = dataclasses.field(default=None, repr=False, compare=False)
    loss: object = dataclasses.field(default=None, repr=False, compare=False)
    metrics: object = dataclasses.field(default=None, repr=False, compare=False)


def register_model(pattern, cell, *, example=None, loss=None, metrics=None):
    """Register the decorated builder under its function name.

    ``example``, ``loss`` and ``metrics`` are the training contract in the module docstring.
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
        description = (inspect.getdoc(builder) or "").strip().splitlines()
        _REGISTRY[name] = ModelInfo(name=name, pattern=pattern, cell=cell,
                                    description=description[0] if description else "",
                                    default_config=defaults, builder=builder,
                                    example=example, loss=loss, metrics=metrics)
        return builder

    return decorator


def _lookup(name):
    _load_zoo()
    if not isinstance(name, str) or name not in _REGISTRY:
        close = close_matches(name, sorted(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (kzoo.list_models() lists all "
                         f"{len(_REGISTRY)})")
    return _REGISTRY[name]


def model_info(name):
    """Pattern, cell, default config and one-line description of a registered model."""
    return _lookup(name)


def list_models(pattern=None):
    """Sorted registered names; ``pattern`` is an I/O pattern name or a glob (``"*lstm*"``)."""
    _load_zoo()
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    if pattern in PATTERNS:
        return [n for n in names if _REGISTRY[n].pattern == pattern]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _check_config(info, config):
    unknown = sorted(set(config) - set(info.default_config))
    if unknown:
        raise ValueError(f"{info.name}: unknown config key(s) {unknown}; accepted keys: "
                         f"{sorted(info.default_config)}")
    return {**info.default_config, **config}


def build(name, **config):
    """Build the registered model ``name`` with its defaults overridden by ``config``."""
    info = _lookup(name)
    _check_config(info, config)
    return info.builder(**config)


def example_batch(name, config=None, *, batch_size=2, seed=0):
    """Random ``(inputs, targets)`` that ``build(name, **config)`` can ``fit`` on.

    ``config`` is a dict (not keyword arguments: a model's config may have its own
    ``batch_size``, e.g. a stateful one, whose example batches then have that size).
    """
    import numpy as np

    info = _lookup(name)
    full_config = _check_config(info, dict(config or {}))
    if info.example is None:
        raise ValueError(f"{name}: registered without `example=`; see the training contract in "
                         f"kzoo.models.registry")
    return info.example(full_config, batch_size, np.random.default_rng(seed))


def compile_args(name, **config):
    """``{"loss": ..., "metrics": ...}`` to ``compile`` ``build(name, **config)`` with."""
    info = _lookup(name)
    full_config = _check_config(info, config)

    def resolve(value):
        return value(full_config) if callable(value) and not _is_keras_object(value) else value

    return {"loss": resolve(info.loss), "metrics": resolve(info.metrics)}


def _is_keras_object(value):
    # A keras.losses.Loss / Metric instance is callable too but is the value itself.
    import keras

    return isinstance(value, (keras.losses.Loss, keras.metrics.Metric))


def _load_zoo():
    # Registration happens on import of the builder modules; importing them here (not at the
    # top) keeps the registry importable by the builders themselves.
    import kzoo.models.zoo  # noqa: F401
