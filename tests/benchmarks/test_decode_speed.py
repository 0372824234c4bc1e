"""benchmarks/decode_speed.py on a tiny run: the table, its columns, honest token counts."""

from .conftest import check_header, number, run_benchmark, tables

COLUMNS = ["model", "method", "batch", "max_length", "tokens", "in-graph ms", "in-graph tok/s",
           "Python loop ms", "Python loop tok/s", "speed-up", "same"]


def test_decode_speed_prints_one_row_per_method_and_batch(tmp_path):
    out = run_benchmark("decode_speed", "--models", "seq2seq_lstm", "--batch", 1, "--batch", 2,
                        "--max-length", 3, "--repeats", 1, "--max-number", 100,
                        "--data-dir", tmp_path)
    check_header(out, "decode_speed")
    [(columns, rows)] = tables(out)
    assert columns == COLUMNS
    assert [(r["method"], r["batch"]) for r in rows] == [
        ("greedy", "1"), ("greedy", "2"), ("beam 4", "1"), ("beam 4", "2")]
    for row in rows:
        assert row["model"] == "seq2seq_lstm"
        # Every row decodes exactly max_length tokens (end token suppressed, checked inside).
        assert int(row["tokens"]) == int(row["batch"]) * 3
        # The Python loop over decode_step must reproduce the in-graph search's tokens.
        assert row["same"] == "yes", row
        for column in COLUMNS[5:10]:
            assert number(row[column]) > 0, (column, row)
