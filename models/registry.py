"""The one registry of kzoo models: ``register_model`` on a builder, ``build(name, **config)``.

A builder is a function whose keyword arguments (all with defaults) are the model's config and
which returns a built ``keras.Model``. Registration records the builder's name, its pattern and
cell, its description (the docstring's first paragraph) and the one-line explanation of each
argument (``kzoo.models.arguments``), so ``list_models`` and ``model_info`` need no model built,
and completes the builder's docstring with its ``Args:`` (those explanations), ``Returns:``,
``Raises:`` and ``Example:`` sections, so a builder's own docstring says only what its model
is. Neither ``list_models`` nor ``model_info`` needs TensorFlow either: for the zoo's models
whose modules are not imported yet they answer from the static table ``kzoo.models.catalog``
(the ``kzoo`` command lists and describes models without loading TensorFlow); ``build`` and the
training contract below import the zoo.

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

The generated ``Example:`` of a builder is this contract in code (build, ``compile_args``,
``example_batch``, ``fit``), the steps tests/models/test_zoo.py runs for every registered name.
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
    """What :func:`model_info` reports about a registered model (a frozen dataclass).

    :func:`model_info` makes it; each argument below is an attribute of the same name.

    Args:
        name: str, the name :func:`build` takes.
        pattern: str, the I/O pattern, one of :data:`PATTERNS`.
        cell: str, the recurrent cell ("rnn", "lstm", "gru", "jordan", "convlstm"), or "mlp"
            for the model without recurrence.
        description: str, the builder docstring's first paragraph, on one line (what
            ``kzoo info`` prints).
        default_config: dict, every config key the builder takes and its default, in the
            builder's order.
        arguments: dict, every config key and its one-line explanation (from
            ``kzoo.models.arguments``), in the same order.

    Example:

    ```python
    import kzoo

    info = kzoo.model_info("many_to_one_gru")
    print(info.pattern, info.cell)            # many_to_one gru
    print(info.default_config["units"])       # 64
    print(info.arguments["units"])            # Hidden units of each recurrent layer (...)
    ```
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


def args_section(explained):
    """An ``Args:`` section (docstring text, unindented) from ``{argument: one-line
    explanation}``: what ``register_model`` gives every builder, and ``Seq2Seq`` its
    constructor."""
    lines = [textwrap.fill(f"{key}: {line}", 96, initial_indent="    ",
                           subsequent_indent="        ", break_on_hyphens=False)
             for key, line in explained.items()]
    return "\n".join(["Args:", *lines])


# The argument an example overrides, where the builder takes it: the width of the layers.
_EXAMPLE_OVERRIDES = {"units": 16, "filters": 8}


def _builder_sections(name, defaults, has_example):
    """The ``Returns:``, ``Raises:`` and ``Example:`` sections of a registered builder. The
    example is the training contract (build, ``compile_args``, ``example_batch``, ``fit``) with
    narrower layers, so it runs in seconds; without ``example=`` it only builds."""
    config = ", ".join(f'"{key}": {value}' for key, value in _EXAMPLE_OVERRIDES.items()
                       if key in defaults)
    code = ["import kzoo", "", f"config = {{{config}}}",
            f'model = kzoo.build("{name}", **config)']
    if has_example:
        code += [f'model.compile("adam", **kzoo.models.compile_args("{name}", **config))',
                 f'inputs, targets = kzoo.models.example_batch("{name}", config)',
                 "model.fit(inputs, targets, epochs=1, verbose=0)"]
    return "\n".join([
        "Returns:",
        "    The built ``keras.Model`` (inputs and outputs above); compile it with",
        f'    ``kzoo.models.compile_args("{name}", **config)``.',
        "",
        "Raises:",
        "    ValueError: if an argument's value is not valid (the message names the argument)",
        "        or, through ``kzoo.build``, a config key is unknown (the message lists the",
        "        accepted keys).",
        "",
        "Example:",
        "",
        "```python",
        *code,
        "```",
    ])


def register_model(pattern, cell, *, example=None, loss=None, metrics=None):
    """Registers the decorated builder under its function name: the zoo's way to add a model.

    The builder takes keyword-only arguments, each with a default (the model's config), and
    returns a built ``keras.Model``. Every argument must be explained in
    ``kzoo.models.arguments.ARGUMENTS``. Registration appends to the builder's docstring its
    ``Args:`` (those explanations), ``Returns:``, ``Raises:`` and ``Example:`` sections, so the
    builder's own docstring says only what the model is: its first paragraph is the
    ``description`` of :func:`model_info`. After adding a zoo model, regenerate the static table
    ``kzoo.models.catalog`` (``python -m kzoo.models.catalog``).

    Args:
        pattern: str, the model's I/O pattern, one of :data:`PATTERNS`.
        cell: str, its recurrent cell ("rnn", "lstm", "gru", "jordan", "convlstm"), or "mlp".
        example: None, or ``example(config, batch_size, rng) -> (inputs, targets)``: random
            NumPy data ``model.fit`` takes, for the full ``config`` (what
            :func:`example_batch` returns; see the training contract in
            ``kzoo.models.registry``).
        loss: the loss to compile the model with (what :func:`compile_args` returns), or
            ``loss(config)`` returning it.
        metrics: the metrics to compile it with, or ``metrics(config)`` returning them.

    Returns:
        A decorator that registers the builder and returns it, its docstring completed.

    Raises:
        ValueError: if ``pattern`` is not one of :data:`PATTERNS` or (by the decorator) a model
            of the builder's name is already registered.
        TypeError: (by the decorator) if an argument of the builder is not keyword-only with a
            default, or has no explanation in ``kzoo.models.arguments.ARGUMENTS``.

    Example:

    A registration lasts as long as the process (the zoo's modules register theirs when
    imported):

    ```python
    import keras
    import kzoo
    from kzoo.models import register_model, variants


    def random_batch(config, batch_size, rng):
        inputs = rng.normal(size=(batch_size, config["input_dim"])).astype("float32")
        return inputs, rng.integers(0, config["num_classes"], size=batch_size)


    @register_model("one_to_one", "mlp", example=random_batch, loss=variants.head_loss,
                    metrics=variants.head_metrics)
    def one_to_one_linear(*, input_dim=8, num_classes=3):
        '''One-to-one, a linear softmax classifier: a feature vector -> one label.'''
        inputs = keras.Input((input_dim,))
        outputs = keras.layers.Dense(num_classes, activation="softmax")(inputs)
        return keras.Model(inputs, outputs, name="one_to_one_linear")


    model = kzoo.build("one_to_one_linear", num_classes=5)
    print(kzoo.model_info("one_to_one_linear").description)   # One-to-one, a linear ...
    ```
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
        sections = f"{args_section(explained)}\n\n" \
            f"{_builder_sections(name, defaults, example is not None)}\n"
        builder.__doc__ = f"{doc}\n\n{sections}" if doc else sections
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
    """Describes the registered model ``name``: pattern, cell, description and config.

    Answered without importing TensorFlow and without building the model.

    Args:
        name: str, a registered model name (:func:`list_models`).

    Returns:
        A :class:`ModelInfo`: ``pattern``, ``cell``, ``description``, ``default_config`` (every
        config key :func:`build` takes, with its default) and ``arguments`` (each key's one-line
        explanation).

    Raises:
        ValueError: if ``name`` is not a registered model (the message suggests the closest
            names).

    Example:

    ```python
    import kzoo

    info = kzoo.model_info("seq2seq_attention")
    print(info.pattern, info.cell)                 # seq2seq lstm
    print(info.default_config["units"])            # 64
    for key, line in info.arguments.items():       # what `kzoo info seq2seq_attention` prints
        print(f"{key}={info.default_config[key]!r}: {line}")
    ```
    """
    infos = _infos()
    if not isinstance(name, str) or name not in infos:
        raise unknown_model_error(name, infos)
    return infos[name]


def list_models(pattern=None):
    """Names of the registered models, sorted: all of them, one pattern's, or a glob's.

    Answered without importing TensorFlow.

    Args:
        pattern: None (default) for every model; one of :data:`PATTERNS` for the models of that
            I/O pattern (``"seq2seq"``); else a shell-style glob the names must match
            (``"*_bi_*"``, ``"*lstm*"``; ``fnmatch``, case-sensitive).

    Returns:
        A sorted list of model names (str), empty when none matches.

    Example:

    ```python
    import kzoo

    print(len(kzoo.list_models()))           # 32
    print(kzoo.list_models("seq2seq"))       # ['seq2seq_attention', 'seq2seq_gru', ...]
    print(kzoo.list_models("*_deep_lstm"))   # ['many_to_many_deep_lstm', ...]
    ```
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
    """Builds the registered model ``name``, its default config overridden by ``config``.

    Args:
        name: str, a registered model name (:func:`list_models`; ``kzoo list``).
        **config: the arguments of the model's builder to override: keys of
            ``model_info(name).default_config``, explained in ``model_info(name).arguments``
            and in the builder's docstring (``kzoo.models.many_to_one.many_to_one_lstm``...).

    Returns:
        The built ``keras.Model``, as the model's builder returns it: freshly initialized and
        uncompiled (compile it with ``compile_args(name, **config)``). The ``seq2seq_*`` models
        are :class:`Seq2Seq` instances.

    Raises:
        ValueError: if ``name`` is not registered (the message suggests the closest names), a
            config key is unknown (the message lists the accepted keys) or a value is not valid
            (the message names the argument).

    Example:

    ```python
    import kzoo

    model = kzoo.build("many_to_one_lstm", vocab_size=100, units=8, bidirectional=True)
    print(model.output_shape)               # (None, 2): softmax over num_classes=2
    try:
        kzoo.build("many_to_one_lstm", unitz=8)
    except ValueError as error:
        print(error)                        # ... unknown config key(s) ['unitz'] ...
    ```
    """
    registration = _lookup(name)
    _check_config(registration.info, config)
    return registration.builder(**config)


def example_batch(name, config=None, *, batch_size=2, seed=0):
    """Random ``(inputs, targets)`` that ``build(name, **config)`` can ``fit`` on.

    NumPy arrays of the shapes and dtypes the model trains on (token ids where it reads ids,
    with padded rows where it masks padding): for a first ``fit``, a test, a benchmark or
    ``kzoo.export.verify``. ``config`` is a dict, not keyword arguments: a model's config may
    have its own ``batch_size`` (a stateful model's, whose batches then have that size).

    Args:
        name: str, a registered model name.
        config: None or a dict of overrides of the model's default config, as given to
            :func:`build`.
        batch_size: int, the number of examples (default 2); a stateful model's config
            ``batch_size`` wins.
        seed: int, the seed of the ``numpy.random.Generator`` drawing them (default 0).

    Returns:
        A tuple ``(inputs, targets)``: ``inputs`` an array or a tuple of arrays in the order of
        ``model.inputs``, ``targets`` an array.

    Raises:
        ValueError: if ``name`` is not registered, a config key is unknown, or the model was
            registered without ``example=``.

    Example:

    ```python
    import kzoo

    config = {"vocab_size": 50, "num_classes": 5, "units": 8}
    inputs, targets = kzoo.models.example_batch("many_to_many_gru", config, batch_size=4)
    print(inputs.shape, targets.shape)      # (4, 5) (4, 5): token ids, a label per step
    model = kzoo.build("many_to_many_gru", **config)
    model.compile("adam", **kzoo.models.compile_args("many_to_many_gru", **config))
    model.fit(inputs, targets, epochs=1, verbose=0)
    ```
    """
    import numpy as np

    registration = _lookup(name)
    full_config = _check_config(registration.info, dict(config or {}))
    if registration.example is None:
        raise ValueError(f"{name}: registered without `example=`; see the training contract in "
                         f"kzoo.models.registry")
    return registration.example(full_config, batch_size, np.random.default_rng(seed))


def compile_args(name, **config):
    """The loss and metrics to ``compile`` ``build(name, **config)`` with.

    What the model was registered with, resolved for its config: e.g. sparse categorical
    cross-entropy and accuracy for a model with ``num_classes``, mean squared error and MAE for
    real-valued outputs, :class:`SequenceLoss` and :class:`SequenceAccuracy` (reported as
    ``token_accuracy``) for seq2seq.

    Args:
        name: str, a registered model name.
        **config: the overrides given to :func:`build` (the loss may depend on them).

    Returns:
        A dict ``{"loss": ..., "metrics": ...}``, to pass as ``model.compile(optimizer,
        **compile_args(name, **config))``.

    Raises:
        ValueError: if ``name`` is not registered or a config key is unknown.

    Example:

    ```python
    import kzoo

    print(kzoo.models.compile_args("many_to_one_gru"))
    # {'loss': 'sparse_categorical_crossentropy', 'metrics': ['accuracy']}
    print(kzoo.models.compile_args("many_to_one_gru", num_classes=None, output_dim=1))
    # {'loss': 'mse', 'metrics': ['mae']}
    ```
    """
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
