import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil  # noqa: E402
import socket  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (for multi-worker training)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kzoo_command():
    path = shutil.which("kzoo")
    if path is None:
        pytest.fail("the `kzoo` entry point is not installed: run `pip install -e .`")
    return path


def file_snapshot(directory):
    """``{relative path: (mtime_ns, bytes)}`` of every file under ``directory``: equal before and
    after a command that changed nothing on disk."""
    result = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, directory)] = (os.stat(path).st_mtime_ns,
                                                             handle.read())
    return result


# -- what a test shows the person running the tests -----------------------------------------------
# A test records (SHOW, text) with the `record_property` fixture to have the text printed when it
# ends, and (SUMMARY_ROW, row) for a row of the quantization table printed after the run. They
# travel in the test's report, so they reach the terminal from pytest-xdist workers too, where a
# print (or a list filled in the worker's process) would not.
SHOW = "show"
SUMMARY_ROW = "quantization_summary"
SUMMARY_HEADER = ("model", "dataset", "held out", "float", "dynamic", "file ratio",
                  "weights ratio", "keras accuracy", "dynamic change")
_run = {"config": None, "rows": []}


def pytest_configure(config):
    _run["config"] = config


def _terminal():
    config = _run["config"]
    if config is None or hasattr(config, "workerinput"):  # an xdist worker: the controller shows
        return None
    return config.pluginmanager.get_plugin("terminalreporter")


def pytest_runtest_logreport(report):
    terminal = _terminal()
    if report.when != "call" or terminal is None:
        return
    for key, value in report.user_properties:
        if key == SHOW:
            terminal.write_line("")
            for line in str(value).splitlines():
                terminal.write_line(line)
        elif key == SUMMARY_ROW:
            _run["rows"].append(list(value))


def pytest_terminal_summary(terminalreporter):
    if _run["rows"] and _terminal() is not None:
        terminalreporter.write_line("")
        for line in summary_lines(sorted(_run["rows"])):   # by model name, however they ran
            terminalreporter.write_line(line)


def summary_lines(rows):
    """The table of the rows tests/export/test_quantized_accuracy.py recorded (SUMMARY_HEADER)."""
    table = [SUMMARY_HEADER] + rows
    widths = [max(len(row[k]) for row in table) for k in range(len(SUMMARY_HEADER))]
    return ["dynamic-range quantization of each model briefly trained on its dataset, scored on "
            "held-out examples:"] + ["  ".join(cell.ljust(w) for cell, w in
                                              zip(row, widths)).rstrip() for row in table]
