"""benchmarks/row_groups.py on a tiny run: its table, columns and the loop of each case."""

from .conftest import check_header, number, run_benchmark, tables


def test_row_groups_prints_a_row_per_case_and_round():
    out = run_benchmark("row_groups", "--shape", "4,5,3,4", "--repeats", 1, "--rounds", 2,
                        "--cases", "^jordan|inference, XLA")
    check_header(out, "row_groups")
    [(columns, rows)] = tables(out)
    assert columns == ["case", "loop", "round", "one loop ms", "2 groups ms", "ratio"]
    assert [(row["case"], row["loop"], row["round"]) for row in rows] == [
        ("jordan, TensorFlow gradient", "tensorarray", "0"),
        ("jordan, TensorFlow gradient", "tensorarray", "1"),
        ("lstm inference, XLA", "xla (XLA)", "0"),
        ("lstm inference, XLA", "xla (XLA)", "1")]
    for row in rows:
        assert number(row["one loop ms"]) > 0 and number(row["2 groups ms"]) > 0
        number(row["ratio"])
