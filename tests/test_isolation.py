"""The tests import kzoo as a user does: from the installed package, never from the checkout's
folders (``datasets/``, ``models/``, ``export/`` are ``kzoo.datasets`` and so on once installed)."""

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_repository_root_is_not_on_sys_path():
    entries = {pathlib.Path(p or ".").resolve() for p in sys.path}
    assert ROOT not in entries, (
        "the repository root is on sys.path: run pytest as `python -P -m pytest` and keep "
        "--import-mode=importlib in pyproject.toml")


def test_top_level_names_do_not_resolve_to_the_checkout():
    for name in ("datasets", "models", "export"):
        spec = importlib.util.find_spec(name)
        origin = pathlib.Path(spec.origin).resolve() if spec and spec.origin else None
        assert origin is None or ROOT not in origin.parents, \
            f"`import {name}` resolves to {origin}, the checkout's folder"


def test_kzoo_subpackages_come_from_the_package_dirs():
    import kzoo.datasets
    import kzoo.export
    import kzoo.models

    for module, folder in ((kzoo.datasets, "datasets"), (kzoo.models, "models"),
                           (kzoo.export, "export")):
        assert pathlib.Path(module.__file__).parent.name == folder
