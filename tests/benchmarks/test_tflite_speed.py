"""benchmarks/tflite_speed.py on a tiny run: its three tables and their columns."""

import pytest

from .conftest import check_header, number, run_benchmark, tables

SPEED = ["variant", "kzoo µs", "tf_keras fused µs", "ratio", "kzoo KB", "tf_keras KB",
         "kzoo max abs diff", "tf_keras max abs diff"]
SCALING = ["T", "kzoo µs", "kzoo µs/step", "kzoo per-step vs first T", "tf_keras fused µs/step",
           "kzoo / fused per step"]
TINY = ("--steps", 20, "--features", 4, "--units", 8, "--repeats", 3)


def check_tables(out, variants, lengths):
    check_header(out, "tflite_speed")
    (speed_columns, speed), (scaling_columns, scaling), (profile_columns, profile) = tables(out)
    assert speed_columns == SPEED
    assert [row["variant"] for row in speed] == variants
    float_row = speed[0]
    assert float_row["variant"] == "float"
    # Both float files compute the Keras 3 model's function (the script stops otherwise).
    assert number(float_row["kzoo max abs diff"]) <= 1e-4
    assert number(float_row["tf_keras max abs diff"]) <= 1e-4
    assert number(float_row["ratio"]) > 0
    assert scaling_columns == SCALING
    assert [int(row["T"]) for row in scaling] == lengths
    assert number(scaling[0]["kzoo per-step vs first T"]) == 1.0
    assert profile_columns[0].startswith("kzoo loop (float")
    assert [row[profile_columns[0]] for row in profile] == \
        ["serving_default", "with_lengths", "stream"]
    for row in profile:
        assert number(row["ops per step"]) >= 1
        assert "FULLY_CONNECTED" in row["op mix per step"]
    return speed


def test_tflite_speed_float_against_the_fused_op():
    out = run_benchmark("tflite_speed", *TINY, "--scaling", "20", "--quantize", "float")
    check_tables(out, ["float"], [20])


@pytest.mark.slow
def test_tflite_speed_every_quantized_variant():
    out = run_benchmark("tflite_speed", *TINY, "--scaling", "20,40")
    speed = check_tables(out, ["float", "dynamic", "float16", "int8"], [20, 40])
    for row in speed:
        assert number(row["kzoo KB"]) > 0 and number(row["tf_keras KB"]) > 0
