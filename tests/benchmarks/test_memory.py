"""benchmarks/memory.py on a tiny run: its table and columns, and its argument checks."""

import subprocess
import sys

from .conftest import BENCHMARKS, check_header, number, run_benchmark, tables

COLUMNS = ["cell", "(B, T, F, U)", "mode", "kzoo MiB", "Keras MiB", "ratio"]


def test_memory_prints_one_row_per_cell_shape_and_mode():
    out = run_benchmark("memory", "--shape", "2,20,3,4", "--cells", "lstm",
                        "--modes", "train,infer", "--runs", 1)
    check_header(out, "memory")
    [(columns, rows)] = tables(out)
    assert columns == COLUMNS
    assert [(r["cell"], r["(B, T, F, U)"], r["mode"]) for r in rows] == [
        ("lstm", "(2, 20, 3, 4)", "train"), ("lstm", "(2, 20, 3, 4)", "infer")]
    for row in rows:
        assert number(row["kzoo MiB"]) >= 0 and number(row["Keras MiB"]) >= 0
        number(row["ratio"])  # nan when Keras' call needed no new pages at this tiny shape


def test_memory_names_a_bad_option():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "memory.py"), "--cells", "lstm,rnn"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--cells" in done.stderr and "rnn" in done.stderr
