"""benchmarks/input_pipeline.py on a tiny run: its table and columns, the generated file
deleted afterwards, and its argument checks."""

import subprocess
import sys

import pytest

from .conftest import BENCHMARKS, check_header, number, run_benchmark, tables

COLUMNS = ["file MB", "pairs", "scan s", "scan MB/s", "pipeline ex/s", "training ex/s", "ratio",
           "peak MiB", "growth MiB"]


@pytest.mark.slow
def test_input_pipeline_prints_one_row_per_file_size(tmp_path):
    out = run_benchmark("input_pipeline", "--sizes", "20KB", "--batch", 8, "--units", 4,
                        "--batches", 3, "--steps", 1, "--keep", tmp_path / "files")
    check_header(out, "input_pipeline")
    [(columns, rows)] = tables(out)
    assert columns == COLUMNS
    [row] = rows
    assert 200 < number(row["pairs"]) < 500          # 20 KB of 3-12 word pairs
    # The rates are printed rounded, so their quotient may differ from the ratio in the last digit.
    assert number(row["ratio"]) == pytest.approx(printed_ratio(row), rel=0.02, abs=0.1)
    assert number(row["peak MiB"]) > number(row["growth MiB"]) > 0
    assert [p.name for p in (tmp_path / "files").iterdir()] == ["pairs_20000.tsv"]


def printed_ratio(row):
    # The ratio column is the pipeline's rate over training's.
    return number(row["pipeline ex/s"]) / number(row["training ex/s"])


def test_input_pipeline_names_a_bad_option():
    for args, words in ((["--sizes", "10XB"], ["--sizes"]), (["--sizes", "5KB"], ["10KB"]),
                        (["--steps", "0"], ["--steps"])):
        done = subprocess.run([sys.executable, str(BENCHMARKS / "input_pipeline.py"), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert all(word in done.stderr for word in words), done.stderr
