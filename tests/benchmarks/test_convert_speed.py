"""benchmarks/convert_speed.py on a tiny run: its two tables and their columns."""

import pytest

from .conftest import check_header, number, run_benchmark, tables


@pytest.mark.slow   # it exports a TFLite file
def test_convert_speed_prints_the_costs_and_the_speed_of_a_converted_model():
    out = run_benchmark("convert_speed", "--shape", "2,5,3,4", "--layers", 2, "--repeats", 1)
    check_header(out, "convert_speed")
    (cost_columns, costs), (speed_columns, speeds) = tables(out)
    assert cost_columns == ["model", "(B, T, F, U)", "convert s", "saved_model s", "tflite s"]
    assert [row["model"] for row in costs] == ["lstm_x2"]
    assert all(number(costs[0][c]) > 0 for c in cost_columns[2:])
    assert speed_columns[-1] == "max abs diff" and len(speeds) == 1
    assert number(speeds[0]["max abs diff"]) < 1e-5           # the converted model computes alike
    assert number(speeds[0]["train ratio"]) > 0 and number(speeds[0]["infer ratio"]) > 0
