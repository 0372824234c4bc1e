"""`kzoo train --data FILE`: a run directory on the user's own file, through the command in this
process. The run records the file's path and SHA-256; a rerun on a changed file is refused; a bad
file is one error line before any training and leaves no run directory; evaluate compares a
forecaster with persistence on the file's test block; predict --input forecasts every window."""

import csv
import hashlib
import json

import numpy as np
import pytest

import kzoo.datasets as kd
from kzoo import cli, training

TINY_SEQ2SEQ = ["--config", "units=4", "--config", "source_embedding_dim=3",
                "--config", "target_embedding_dim=3"]
TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--quiet"]
SERIES = ["--option", "target=temp", "--option", "time_column=date", "--option", "window=6"]


def kzoo(*args):
    return cli.main([str(a) for a in args])


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Copies of the shipped example files (the tests change them)."""
    folder = tmp_path_factory.mktemp("data")
    pairs, series = folder / "pairs.tsv", folder / "series.csv"
    pairs.write_bytes(open(kd.example_file("pairs.tsv"), "rb").read())
    series.write_bytes(open(kd.example_file("series.csv"), "rb").read())
    return pairs, series


@pytest.fixture(scope="module")
def series_run(files, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "forecaster"
    assert kzoo("train", "many_to_one_gru", "--data", files[1], *SERIES, "--config", "units=4",
                *TINY, "--out", run) == 0
    return run


@pytest.fixture(scope="module")
def translator_run(files, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "translator"
    assert kzoo("train", "seq2seq_attention", "--data", files[0], *TINY_SEQ2SEQ, *TINY,
                "--out", run) == 0
    return run


@pytest.mark.slow   # a seq2seq run, evaluated and decoded: about 30 s on 2 idle cores
def test_a_run_on_a_file_records_its_path_and_hash_and_carries_its_vocabularies(
        files, translator_run, capsys):
    config = json.loads((translator_run / "config.json").read_text())
    assert config["data_file"]["path"] == str(files[0].resolve())
    assert config["data_file"]["sha256"] == sha256(files[0])
    _, info = kd.from_text_pairs(files[0])
    assert json.loads((translator_run / "vocab" / "source.json").read_text()) == \
        list(info.vocabularies["source"])
    assert kzoo("evaluate", translator_run) == 0
    assert "exact_match" in json.loads((translator_run / "eval.json").read_text())["metrics"]
    capsys.readouterr()
    assert kzoo("predict", translator_run, "Where is a new car?") == 0
    assert capsys.readouterr().out.strip()   # words of the target vocabulary, untrained


@pytest.mark.parametrize("case", ["missing column", "not a number", "empty file"])
def test_bad_data_is_one_error_line_and_no_run_directory(tmp_path, capsys, case, files):
    data = tmp_path / "series.csv"
    lines = files[1].read_text().splitlines()
    options = list(SERIES)
    if case == "missing column":
        options[options.index("target=temp")] = "target=temperature"
    elif case == "not a number":
        lines[20] = lines[20].split(",")[0] + ",warm"
    else:
        lines = []
    data.write_text("".join(line + "\n" for line in lines))
    run = tmp_path / "runs" / "bad"
    assert kzoo("train", "many_to_one_gru", "--data", data, *options, *TINY,
                "--out", run) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "series.csv" in error, error
    expected = {"missing column": "columns found: 'date', 'temp'",
                "not a number": "line 21, column 'temp': 'warm' is not a number",
                "empty file": "empty"}[case]
    assert expected in error
    assert not run.exists()


def test_a_pair_line_without_a_tab_names_its_line(files, tmp_path, capsys):
    data = tmp_path / "pairs.tsv"
    lines = files[0].read_text().splitlines()
    lines[6] = lines[6].replace("\t", " ")
    data.write_text("".join(line + "\n" for line in lines))
    run = tmp_path / "run"
    assert kzoo("train", "seq2seq_attention", "--data", data, *TINY, "--out", run) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "pairs.tsv, line 7" in error, error
    assert not run.exists()


def test_a_run_directory_made_by_a_run_that_fails_before_its_first_epoch_is_removed(
        files, tmp_path, monkeypatch):
    from kzoo.training import trainer

    def fail(*args, **kwargs):
        raise RuntimeError("killed in the first epoch")

    monkeypatch.setattr(trainer, "_fit_resumably", fail)
    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        training.train("many_to_one_gru", data=files[1], out=run, epochs=1, verbose=0,
                       dataset_options={"target": "temp", "window": 6},
                       model_config={"units": 4}, deterministic=False)
    assert not run.exists()


def test_evaluate_compares_a_forecaster_with_persistence_on_the_test_block(files, series_run):
    assert kzoo("evaluate", series_run) == 0
    metrics = json.loads((series_run / "eval.json").read_text())["metrics"]
    _, info = kd.from_csv(files[1], "test", target="temp", time_column="date", window=6)
    assert metrics["persistence_mae"] == pytest.approx(info.baselines["persistence_mae"])
    assert metrics["persistence_mse"] == pytest.approx(info.baselines["persistence_mse"])
    assert np.isfinite(metrics["mae"]) and metrics["loss"] >= 0


def test_predict_input_forecasts_after_every_window_in_the_targets_units(
        files, series_run, tmp_path):
    out = tmp_path / "forecast.csv"
    assert kzoo("predict", series_run, "--input", files[1], "--output", out) == 0
    rows = list(csv.reader(out.open()))
    series = list(csv.reader(files[1].open()))[1:]
    assert rows[0] == ["date", "temp+1"]
    assert len(rows) - 1 == len(series) - 6 + 1
    # The row of time t forecasts from the 6 rows ending at t, in degrees.
    model = training.load_run_model(series_run)
    k = 40
    window = np.array([[float(v)] for _, v in series[k - 5:k + 1]], "float32")[None]
    assert rows[k - 5 + 1][0] == series[k][0]
    assert float(rows[k - 5 + 1][1]) == pytest.approx(float(model.predict(window, verbose=0)[0, 0]),
                                                      rel=1e-4)


@pytest.mark.slow   # a third training run
def test_a_text_classifier_on_a_csv_predicts_a_known_label_for_every_row(tmp_path, capsys):
    words = {"good": ["great", "fine", "lovely", "superb"], "bad": ["awful", "dull", "poor"]}
    rows = [(f"a {w} film {i}", label) for i in range(12) for label, ws in words.items()
            for w in ws]
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    run = tmp_path / "classifier"
    assert kzoo("train", "many_to_one_gru", "--data", data, "--config", "units=4",
                "--config", "embedding_dim=3", *TINY, "--out", run) == 0
    assert json.loads((run / "config.json").read_text())["class_names"] == ["bad", "good"]
    capsys.readouterr()
    assert kzoo("predict", run, "--input", data) == 0
    output = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert output[0] == ["row", "label", "probability"] and len(output) == len(rows) + 1
    assert {label for _, label, _ in output[1:]} <= {"bad", "good"}
    assert all(0.5 <= float(p) <= 1 for _, _, p in output[1:])   # the most likely of two
    assert kzoo("predict", run, "a fine film") == 2   # text is for seq2seq runs
    assert "decodes seq2seq" in capsys.readouterr().err


def test_a_changed_file_is_refused_unless_asked(files, series_run, capsys):
    """Last: it changes the shared series file."""
    args = ["train", "many_to_one_gru", "--data", files[1], *SERIES, "--config", "units=4",
            *TINY, "--out", series_run]
    with open(files[1], "a") as handle:
        handle.write("2010/01/31 01:00,40.1\n")
    capsys.readouterr()
    assert kzoo(*args) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "series.csv changed since" in error and \
        "--data-changed-ok" in error
    # Asked for: the finished run has nothing to do; two epochs resume on the new content.
    assert kzoo(*args, "--data-changed-ok") == 0
    assert "nothing to do" in capsys.readouterr().out
    args[args.index("--epochs") + 1] = "2"
    assert kzoo(*args, "--data-changed-ok") == 0
    config = json.loads((series_run / "config.json").read_text())
    assert config["data_file"]["sha256"] == sha256(files[1]) and config["epochs"] == 2
