"""benchmarks/rnn_speed.py on a tiny run: its tables and columns, and its argument checks."""

import subprocess
import sys

from .conftest import BENCHMARKS, check_header, number, run_benchmark, tables

COLUMNS = ["cell", "model", "(B, T, F, U)", "kzoo train ms", "Keras train ms", "train ratio",
           "kzoo infer ms", "Keras infer ms", "infer ratio", "xla infer ratio",
           "torch train ms", "torch infer ms", "roofline train/infer ms"]


def test_rnn_speed_prints_a_row_per_cell_model_and_shape_and_a_scaling_table():
    out = run_benchmark("rnn_speed", "--shape", "2,6,3,4", "--cells", "gru",
                        "--models", "single,bidirectional", "--repeats", 1,
                        "--scaling", "5,10")
    check_header(out, "rnn_speed")
    (columns, rows), (scaling_columns, scaling_rows) = tables(out)
    assert columns == COLUMNS
    assert [(r["cell"], r["model"]) for r in rows] == [("gru", "single"), ("gru", "bidirectional")]
    for row in rows:
        assert row["(B, T, F, U)"] == "(2, 6, 3, 4)"
        for column in ("kzoo train ms", "Keras train ms", "kzoo infer ms", "Keras infer ms"):
            assert number(row[column]) > 0
        # The ratio is of the unrounded times: within what rounding to 0.1 ms allows.
        ours, theirs = number(row["kzoo train ms"]), number(row["Keras train ms"])
        low, high = (ours - 0.05) / (theirs + 0.05), (ours + 0.05) / (theirs - 0.05)
        assert low - 0.005 <= number(row["train ratio"]) <= high + 0.005
        number(row["xla infer ratio"])
        number(row["torch train ms"])                 # the test setup installs torch
    assert scaling_columns == ["cell", "T", "train ms/step", "infer ms/step"]
    assert [r["T"] for r in scaling_rows] == ["5", "10", "10 / 5"]


def test_rnn_speed_names_a_bad_option():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "rnn_speed.py"), "--cells", "rnn"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "unknown cell rnn" in done.stderr
