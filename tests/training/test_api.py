"""kzoo.training is documented the Keras way, and its docstrings' examples run.

Every public function and class of its modules has a docstring with a one-line summary, an
``Args:`` section naming every parameter, and a ``Returns:`` section when it returns something
(checked with tests/test_public_api.py's rules, less its demand for an example: examples are
given where a Python user starts, ``train``, ``evaluate``, ``export_run``, ``predict``...).
Every ```python block of those docstrings runs, with tests/test_docs.py's runner, in a fresh
temporary directory.
"""

import importlib
import inspect
import pkgutil

import pytest
import tensorflow as tf

import kzoo.training

from ..test_docs import run_python_blocks, tfds_data_dir  # noqa: F401 (a fixture)
from ..test_public_api import documented_args, example_params, parameters, returns_something, \
    sections

MODULES = sorted(f"kzoo.training.{m.name}" for m in pkgutil.iter_modules(kzoo.training.__path__))


def public_callables():
    """``{qualified name: object}`` of every public function and class kzoo.training's modules
    define."""
    found = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if not attribute.startswith("_") and (inspect.isfunction(value) or
                                                   inspect.isclass(value)) \
                    and value.__module__ == name:
                found[f"{name}.{attribute}"] = value
    return found


def problems_of(qualified, obj):
    doc = obj.__doc__
    if not doc or not doc.strip():
        return [f"{qualified}: no docstring"]
    doc = inspect.cleandoc(doc)
    found = sections(doc)
    problems = []
    if not doc.splitlines()[0].strip() or doc.splitlines()[0].strip().endswith(":"):
        problems.append(f"{qualified}: no one-line summary")
    wanted = [] if inspect.isclass(obj) and "Attributes" in found else parameters(obj)
    if wanted:
        named = documented_args(found.get("Args", []))
        missing = [name for name in wanted if name not in named]
        if missing:
            problems.append(f"{qualified}: Args: does not describe {missing}")
    if not inspect.isclass(obj) and returns_something(obj) and "Returns" not in found:
        problems.append(f"{qualified}: returns a value but has no Returns: section")
    return problems


def test_the_package_has_its_names_and_the_commands_have_examples():
    assert all(hasattr(kzoo.training, name) for name in kzoo.training.__all__)
    for name in ("train", "evaluate", "export_run", "predict"):
        assert "Example" in sections(inspect.cleandoc(getattr(kzoo.training, name).__doc__)), name


def test_public_names_are_documented():
    problems = [p for qualified, obj in public_callables().items()
                for p in problems_of(qualified, obj)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("blocks", example_params(public_callables()))
def test_docstring_examples_run(blocks, tmp_path, monkeypatch, tfds_data_dir):  # noqa: F811
    # `train` switches op determinism on for its whole process; not for the test process.
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: None)
    run_python_blocks(blocks, tmp_path, monkeypatch, tfds_data_dir)
