"""benchmarks/memory.py on a tiny run: its table and columns, and its argument checks."""

import subprocess
import sys

from .conftest import BENCHMARKS, check_header, number, run_benchmark, tables

COLUMNS = ["cell", "(B, T, F, U)", "mode", "kzoo MiB", "Keras MiB", "ratio", "kzoo base MiB",
           "Keras base MiB"]


def test_memory_prints_one_row_per_cell_shape_and_mode():
    out = run_benchmark("memory", "--shape", "2,20,3,4", "--cells", "gru", "--modes", "infer",
                        "--runs", 1, "--base-steps", 5)
    check_header(out, "memory")
    [(columns, rows)] = tables(out)
    assert columns == COLUMNS
    assert [(r["cell"], r["(B, T, F, U)"], r["mode"]) for r in rows] == [
        ("gru", "(2, 20, 3, 4)", "infer")]
    for row in rows:
        # Differences of two processes' peaks: a few pages either way at this tiny shape.
        for column in ("kzoo MiB", "Keras MiB", "ratio"):
            number(row[column])
        # The first call's growth at the base length: tracing at least.
        assert number(row["kzoo base MiB"]) > 0 and number(row["Keras base MiB"]) > 0


def test_memory_names_a_bad_option():
    for args, words in ((["--cells", "lstm,rnn"], ["--cells", "rnn"]),
                        (["--shape", "2,20,3,4", "--base-steps", "20"], ["--base-steps"])):
        done = subprocess.run([sys.executable, str(BENCHMARKS / "memory.py"), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert all(word in done.stderr for word in words), done.stderr
