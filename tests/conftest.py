import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def kzoo_command():
    path = shutil.which("kzoo")
    if path is None:
        pytest.fail("the `kzoo` entry point is not installed: run `pip install -e .`")
    return path
