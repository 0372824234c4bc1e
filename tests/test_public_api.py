"""The public API is documented the Keras way, and the docstrings' examples run.

Each package face in FACES lists its public names in ``__all__``. Every public callable (each
function, and each class through its constructor) has a docstring with an ``Args:`` section
naming every parameter of its signature (``*args``/``**kwargs`` as ``args``/``kwargs``, with or
without the stars), a ``Returns:`` (or ``Yields:``) section when it returns something, and an
``Example:`` (or ``Examples:``) section with a ```python block. Constants and modules in
``__all__`` are skipped.

A name is checked once, by the face that owns it: the face whose package defines it (the
longest face name that prefixes its ``__module__``), whichever face re-exports it; so
``kzoo.datasets.TokenVectorizer`` (defined in ``kzoo.layers.text``) is checked with
``kzoo.layers``, and ``kzoo.build`` with ``kzoo.models``.

The ```python blocks of every docstring of a complete face run, one docstring per test, each in a
fresh namespace and temporary directory, with the runner of tests/test_docs.py (its
SUBSTITUTIONS apply; datasets are prepared into a temporary TFDS data dir).

INCOMPLETE names the faces whose docstrings are still being written: their documentation test is
a strict xfail (it fails once the face is complete, until its entry is removed) and their
examples do not run yet.
"""

import ast
import importlib
import inspect
import re
import textwrap

import pytest

from .test_docs import blocks_in, run_python_blocks, tfds_data_dir  # noqa: F401 (a fixture)

# face -> why it is not complete yet. Remove an entry as soon as its face is documented.
INCOMPLETE = {}

FACES = ["kzoo", "kzoo.export", "kzoo.datasets", "kzoo.models", "kzoo.layers", "kzoo.diagnostics"]

SECTIONS = ("Args", "Arguments", "Call arguments", "Returns", "Yields", "Raises", "Example",
            "Examples", "Attributes", "Equations", "Note", "Notes", "References", "Input shape",
            "Output shape")
SECTION = re.compile(rf"^({'|'.join(SECTIONS)}):\s*$")
ARG = re.compile(r"^\**(\w+)(\s*\([^)]*\))?\s*:")


def public_names(face):
    """``(name, object)`` of every name in ``face``'s ``__all__``; None without ``__all__``."""
    module = importlib.import_module(face)
    names = getattr(module, "__all__", None)
    if names is None:
        return None
    return [(name, getattr(module, name)) for name in names]


def owner(face, obj):
    """The face in FACES that defines ``obj``; ``face`` (the one exporting it) when none does."""
    module = getattr(obj, "__module__", None) or ""
    owners = [f for f in FACES if module == f or module.startswith(f + ".")]
    return max(owners, key=len) if owners else face


def owned_callables(face):
    """``{qualified name: object}``: the public callables ``face`` owns, found through the
    ``__all__`` of every face."""
    result, seen = {}, set()
    for exporter in FACES:
        for name, obj in public_names(exporter) or []:
            if not callable(obj) or inspect.ismodule(obj) or id(obj) in seen:
                continue
            if owner(exporter, obj) == face:
                seen.add(id(obj))
                result[f"{exporter}.{name}"] = obj
    return result


def sections(doc):
    """``{section title: its lines, dedented}`` of a cleaned docstring: a section runs to the
    next section title."""
    result, current = {}, None
    for line in doc.splitlines():
        match = SECTION.match(line)
        if match:
            current = result.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line)
    return {title: textwrap.dedent("\n".join(lines)).splitlines()
            for title, lines in result.items()}


def documented_args(lines):
    """The argument names of an ``Args:`` section: its least indented entries."""
    entries = [line for line in lines if line.strip()]
    if not entries:
        return set()
    indent = min(len(line) - len(line.lstrip()) for line in entries)
    names = set()
    for line in entries:
        if len(line) - len(line.lstrip()) == indent:
            match = ARG.match(line.strip())
            if match:
                names.add(match.group(1))
    return names


def parameters(obj):
    """The names a caller passes: a function's parameters, a class's constructor's."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [name for name, p in signature.parameters.items() if name not in ("self", "cls")]


def returns_something(function):
    """Whether ``function``'s own body returns a value or yields (nested functions aside)."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source).body[0]
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Return) and node.value is not None and \
                not (isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def docstring_problems(qualified, obj):
    doc = obj.__doc__   # not inspect.getdoc: a class without one would show its base's
    if not doc or not doc.strip():
        return [f"{qualified}: no docstring"]
    doc = inspect.cleandoc(doc)
    found = sections(doc)
    problems = []
    summary = doc.splitlines()[0].strip()
    if not summary or SECTION.match(summary):
        problems.append(f"{qualified}: the docstring does not start with a one-line summary")
    wanted = parameters(obj)
    if wanted and "Args" not in found:
        problems.append(f"{qualified}: no Args: section (parameters {wanted})")
    elif wanted:
        named = documented_args(found["Args"])
        missing = [name for name in wanted if name not in named]
        extra = sorted(named - set(wanted))
        if missing:
            problems.append(f"{qualified}: Args: does not describe {missing}")
        if extra:
            problems.append(f"{qualified}: Args: describes {extra}, which the signature lacks")
    if not inspect.isclass(obj) and returns_something(obj) and \
            "Returns" not in found and "Yields" not in found:
        problems.append(f"{qualified}: returns a value but has no Returns: section")
    example = found.get("Example", []) + found.get("Examples", [])
    if not any(line.strip() == "```python" for line in example):
        problems.append(f"{qualified}: no Example: section with a ```python block")
    return problems


def _face_param(face):
    if face in INCOMPLETE:
        return pytest.param(face, marks=pytest.mark.xfail(strict=True, reason=INCOMPLETE[face]))
    return face


def test_incomplete_names_only_faces():
    assert set(INCOMPLETE) <= set(FACES)


@pytest.mark.parametrize("face", [_face_param(face) for face in FACES])
def test_public_names_are_documented(face):
    names = public_names(face)
    problems = [] if names is not None else [f"{face}: no __all__"]
    if names is not None:
        module = importlib.import_module(face)
        problems += [f"{face}.__all__ lists {name!r}, which {face} does not have"
                     for name in module.__all__ if not hasattr(module, name)]
    for qualified, obj in owned_callables(face).items():
        problems += docstring_problems(qualified, obj)
    assert not problems, "\n".join(problems)


# -- the examples run -----------------------------------------------------------------------------
def example_params(callables):
    """A ``pytest.param`` of the ```python blocks of each docstring of ``{qualified name:
    object}`` that has any."""
    cases = []
    for qualified, obj in callables.items():
        blocks = [b for b in blocks_in(inspect.cleandoc(obj.__doc__ or ""),
                                       f"{qualified} docstring") if b.language == "python"]
        if blocks:
            cases.append(pytest.param(blocks, id=qualified))
    return cases


def _examples():
    return [case for face in FACES if face not in INCOMPLETE
            for case in example_params(owned_callables(face))]


@pytest.mark.parametrize("blocks", _examples())
def test_docstring_examples_run(blocks, tmp_path, monkeypatch, tfds_data_dir):  # noqa: F811
    run_python_blocks(blocks, tmp_path, monkeypatch, tfds_data_dir)
