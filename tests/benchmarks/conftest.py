"""Running a benchmark script the way a person does (``python benchmarks/NAME.py ...``, in a
subprocess) and reading the markdown tables it prints. Timings are never asserted: the tests
check that each script runs and prints well-formed tables with the documented columns."""

import os
import pathlib
import subprocess
import sys

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(name, *args, timeout=900):
    """stdout of ``python benchmarks/<name>.py args``; fails the test with stderr on error."""
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), *map(str, args)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{name}.py failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


def tables(text):
    """Every markdown table in ``text``: a list of ``(columns, rows)``, rows as dicts by column.
    Asserts each table is well-formed: a ``|---|`` line under its header and as many cells in
    every row as columns."""
    lines = text.splitlines()
    found, k = [], 0
    while k < len(lines):
        if not lines[k].startswith("|"):
            k += 1
            continue
        columns = _cells(lines[k])
        assert k + 1 < len(lines) and _cells(lines[k + 1]) == ["---"] * len(columns), \
            f"no separator line under table header {lines[k]!r}"
        rows, k = [], k + 2
        while k < len(lines) and lines[k].startswith("|"):
            cells = _cells(lines[k])
            assert len(cells) == len(columns), f"{len(cells)} cells for {columns}: {lines[k]!r}"
            rows.append(dict(zip(columns, cells)))
            k += 1
        found.append((columns, rows))
    return found


def _cells(line):
    assert line.startswith("|") and line.endswith("|"), f"not a table line: {line!r}"
    return [cell.strip() for cell in line[1:-1].split("|")]


def check_header(text, title):
    """The first line names the benchmark, kzoo, TensorFlow and Keras versions and the date."""
    first = text.splitlines()[0]
    assert first.startswith(f"# {title}: kzoo "), first
    for word in ("TensorFlow", "Keras", "cores"):
        assert word in first, first


def number(cell):
    """A cell's float value (a test failure, not a ValueError, when it is not a number)."""
    try:
        return float(cell)
    except ValueError:
        raise AssertionError(f"expected a number, got {cell!r}") from None
