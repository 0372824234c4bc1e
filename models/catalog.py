"""The zoo's metadata as a static table (``catalog.json`` beside this module), read without
TensorFlow: what ``kzoo list``, ``kzoo info`` and every command's model-name check answer from.

Each model's entry is what its registration says (pattern, cell, description, default config;
see ``kzoo.models.registry``) and its parameter count with the default config. The table is
generated from the live registry, never written by hand: after adding a model or changing a
builder's signature or docstring, run::

    python -m kzoo.models.catalog

tests/models/test_zoo.py fails while the table differs from the registry.
"""

import functools
import json
import pathlib

CATALOG_PATH = pathlib.Path(__file__).with_name("catalog.json")


@functools.cache
def read():
    """``{name: {"pattern", "cell", "description", "default_config", "parameters"}}``."""
    return json.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def default_parameters(name):
    """The parameter count of ``kzoo.build(name)`` (the default config), or None for a model the
    table does not hold (one registered outside the zoo)."""
    return read().get(name, {}).get("parameters")


def generate():
    """The table, from the live registry: imports the zoo and builds every model."""
    from kzoo.models import registry

    table = {}
    for name, info in registry.registered_infos().items():
        table[name] = {"pattern": info.pattern, "cell": info.cell,
                       "description": info.description, "default_config": info.default_config,
                       "parameters": registry.build(name).count_params()}
    return table


def write():
    """Regenerate ``catalog.json``."""
    text = json.dumps(generate(), indent=1, ensure_ascii=False) + "\n"
    CATALOG_PATH.write_text(text, encoding="utf-8")
    read.cache_clear()
    return CATALOG_PATH


if __name__ == "__main__":
    print(f"wrote {write()}")
