"""setup.cfg installs every package of the project: a folder missing from its `packages` list works
in an editable install and is absent from a wheel."""

import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    package_dir = dict(line.split(" = ") for line in
                       config["options"]["package_dir"].strip().splitlines())
    found = set()
    for package, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            found.add(".".join((package, *relative)))
    assert found - listed == set(), f"packages missing from setup.cfg: {sorted(found - listed)}"
    assert listed - found == set(), \
        f"setup.cfg lists packages with no folder: {sorted(listed - found)}"
