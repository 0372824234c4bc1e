"""What the pattern modules share: the output head, its loss, example data, and named variants.

A pattern module writes ONE builder ``_build(*, cell, name, units=64, ...)`` and registers its
named models with :func:`register_variants`, which makes ``{pattern}_{variant}_{cell}`` builders
whose signature is the shared one with the variant's defaults (``bi``: ``bidirectional=True``;
``deep``: ``num_layers=3, dropout=0.2``) and without ``cell``/``name``: the model's name says
its cell.
"""

import inspect
import textwrap


from kzoo.layers.dense import Dense
from kzoo.models.registry import register_model
from kzoo.models.stack import CELLS, check_positive_int

# The variants every recurrent pattern has, and the defaults that make each.
VARIANTS = {"": {}, "bi": {"bidirectional": True}, "deep": {"num_layers": 3, "dropout": 0.2}}

_CELL_TITLES = {"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}
_VARIANT_TITLES = {"": "", "bi": "bidirectional ", "deep": "deep (stacked) "}


def describe_defaults(signature):
    return ", ".join(f"{p.name}={p.default!r}" for p in signature.parameters.values())


def make_builder(base, name, fixed, defaults, summary, omit=()):
    """A registered-style builder: ``base`` with ``fixed`` arguments bound and new ``defaults``.

    Its signature (keyword-only, every argument defaulted) is what ``model_info`` reports, and
    its docstring is ``summary``, the defaults, then ``base``'s docstring (which says what the
    model is; ``register_model`` adds the ``Args:``, ``Returns:``, ``Raises:`` and ``Example:``
    sections). The arguments named in ``omit`` are left out of it: ``base`` gets their own
    defaults (a model without attention takes no attention arguments).
    """
    base_parameters = inspect.signature(base).parameters
    fixed = {**{key: base_parameters[key].default for key in omit}, **fixed}
    parameters = [p.replace(default=defaults.get(p.name, p.default))
                  for p in base_parameters.values() if p.name not in fixed]
    signature = inspect.Signature(parameters)

    def builder(**config):
        try:
            bound = signature.bind(**config)
        except TypeError:
            unknown = sorted(set(config) - set(signature.parameters))
            raise ValueError(f"{name}: unknown config key(s) {unknown}; accepted keys: "
                             f"{sorted(signature.parameters)}") from None
        bound.apply_defaults()
        return base(**fixed, **bound.arguments)

    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = base.__module__
    builder.__signature__ = signature
    defaults_line = textwrap.fill(f"Defaults: {describe_defaults(signature)}.", 96,
                                  break_on_hyphens=False)
    builder.__doc__ = f"{summary}\n\n{defaults_line}\n\n{inspect.getdoc(base)}"
    return builder


def register_variants(namespace, pattern, base, summary, example, loss, metrics,
                      cells=CELLS, variants=VARIANTS):
    """Register ``{pattern}_{variant}_{cell}`` for every cell and variant; put them in
    ``namespace`` (the module's globals) so they are importable by name."""
    for variant, defaults in variants.items():
        for cell in cells:
            name = "_".join(part for part in (pattern, variant, cell) if part)
            line = f"{_VARIANT_TITLES[variant]}{_CELL_TITLES[cell]}: {summary}"
            line = f"{pattern.replace('_', '-').capitalize()}, {line}"
            builder = make_builder(base, name, {"cell": cell, "name": name}, defaults, line)
            namespace[name] = register_model(pattern, cell, example=example, loss=loss,
                                             metrics=metrics)(builder)


# -- the output head: classes (softmax) or real values (linear) ------------------------------------
def check_inputs(where, vocab_size, input_dim):
    """Real-valued features when ``input_dim`` is set (``vocab_size`` is then unused), else
    token ids below ``vocab_size``."""
    if vocab_size is None and input_dim is None:
        raise ValueError(f"{where}: give `vocab_size` (token ids) or `input_dim` (real-valued "
                         f"features); both are None")


def uses_tokens(config):
    return config.get("input_dim") is None


def check_head(where, num_classes, output_dim):
    if (num_classes is None) == (output_dim is None):
        raise ValueError(f"{where}: give exactly one of `num_classes` (classification) and "
                         f"`output_dim` (regression), got num_classes={num_classes!r}, "
                         f"output_dim={output_dim!r}")
    check_positive_int(where, "num_classes", num_classes, allow_none=True)
    check_positive_int(where, "output_dim", output_dim, allow_none=True)


def output_head(x, num_classes, output_dim, name="outputs"):
    """Softmax probabilities over ``num_classes``, or ``output_dim`` linear outputs."""
    if num_classes is not None:
        return Dense(num_classes, activation="softmax", name=name)(x)
    return Dense(output_dim, name=name)(x)


def head_loss(config):
    """Sparse categorical cross-entropy for classes, mean squared error for real outputs."""
    return "sparse_categorical_crossentropy" if config.get("num_classes") else "mse"


def head_metrics(config):
    return ["accuracy"] if config.get("num_classes") else ["mae"]


# -- random example batches ---------------------------------------------------------------------
EXAMPLE_LENGTH = 5


def example_tokens(rng, batch_size, length, vocab_size, pad_last_row=True):
    """Token ids in [1, vocab_size) with the last row padded (0) after 3 steps, so that the
    example exercises masking."""
    ids = rng.integers(1, max(vocab_size, 2), size=(batch_size, length)).astype("int32")
    if pad_last_row and batch_size > 1 and length > 3:
        ids[-1, 3:] = 0
    return ids


def example_sequence_inputs(config, batch_size, rng, length=EXAMPLE_LENGTH):
    if uses_tokens(config):
        return example_tokens(rng, batch_size, length, config["vocab_size"])
    return rng.normal(size=(batch_size, length, config["input_dim"])).astype("float32")


def example_targets(config, rng, shape):
    if config.get("num_classes") is not None:
        return rng.integers(0, config["num_classes"], size=shape).astype("int32")
    return rng.normal(size=(*shape, config["output_dim"])).astype("float32")


def example_batch_size(config, batch_size):
    # A stateful model is built for one batch size; its example batches have that size.
    return config["batch_size"] if config.get("stateful") else batch_size
