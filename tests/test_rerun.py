"""Rerunning a finished command is safe: ``kzoo train`` of a finished run changes nothing on disk,
``kzoo export`` of a run whose export is up to date exports nothing and re-exports what a changed
model made stale; a model.keras saved after a resume keeps the optimizer's variables; an older
run's history (``sequence_accuracy``) reads and resumes as ``token_accuracy``."""

import json
import os
import warnings

import keras

from kzoo import training

from .conftest import file_snapshot as files

TINY_GRU = dict(model_config={"units": 4, "vocab_size": 10, "embedding_dim": 3},
                dataset_options={"size": 16}, batch_size=8, steps_per_epoch=2, verbose=0,
                plots=False, deterministic=False)
TINY_SEQ2SEQ = dict(model_config={"units": 4, "source_vocab_size": 10, "target_vocab_size": 10,
                                  "source_embedding_dim": 3, "target_embedding_dim": 3},
                    dataset_options={"size": 16}, batch_size=8, steps_per_epoch=2, verbose=0,
                    plots=False, deterministic=False)


def load_warnings(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(path)
    return model, [str(w.message) for w in caught]


def test_rerunning_a_finished_run_changes_nothing(tmp_path, capsys):
    first = training.train("many_to_one_gru", "example", out=tmp_path, epochs=1, **TINY_GRU)
    before = files(tmp_path)
    capsys.readouterr()
    again = training.train("many_to_one_gru", "example", out=tmp_path, epochs=1, **TINY_GRU)
    assert "has trained 1 epoch(s) already (--epochs 1); nothing to do" in capsys.readouterr().out
    assert files(tmp_path) == before
    assert again.history == first.history and again.config == first.config
    assert [w.tolist() for w in again.model.get_weights()] == \
        [w.tolist() for w in first.model.get_weights()]


def test_a_model_saved_after_the_backup_keeps_the_optimizer(tmp_path):
    """Killed between the last epoch's backup and the save of model.keras, a rerun restores the
    backup (optimizer state included) and saves: later loads find every optimizer variable."""
    training.train("many_to_one_gru", "example", out=tmp_path, epochs=1, **TINY_GRU)
    trained, messages = load_warnings(tmp_path / "model.keras")
    assert messages == []
    os.remove(tmp_path / "model.keras")
    training.train("many_to_one_gru", "example", out=tmp_path, epochs=1, **TINY_GRU)
    restored, messages = load_warnings(tmp_path / "model.keras")
    assert not [m for m in messages if "Skipping variable loading" in m], messages
    assert len(restored.optimizer.variables) == len(trained.optimizer.variables) > 2
    for expected, actual in zip(trained.optimizer.variables, restored.optimizer.variables):
        assert actual.numpy().tolist() == expected.numpy().tolist(), actual.path


def test_an_older_runs_history_resumes_as_token_accuracy(tmp_path):
    run = training.train("seq2seq_attention", "example", out=tmp_path, epochs=1, **TINY_SEQ2SEQ)
    assert set(run.history["metrics"]) == {"loss", "token_accuracy", "val_loss",
                                           "val_token_accuracy"}
    # A run trained when the metric was named sequence_accuracy.
    path = tmp_path / "history.json"
    older = json.loads(path.read_text())
    older["metrics"] = {key.replace("token_accuracy", "sequence_accuracy"): values
                        for key, values in older["metrics"].items()}
    path.write_text(json.dumps(older))
    done = training.train("seq2seq_attention", "example", out=tmp_path, epochs=1,
                          **TINY_SEQ2SEQ)
    assert "token_accuracy" in training.final_metrics_line(done.history)
    resumed = training.train("seq2seq_attention", "example", out=tmp_path, epochs=2,
                             **TINY_SEQ2SEQ)
    history = json.loads(path.read_text())
    assert history == resumed.history and history["epochs"] == [0, 1]
    assert sorted(history["metrics"]) == ["loss", "token_accuracy", "val_loss",
                                          "val_token_accuracy"]
    assert history["metrics"]["token_accuracy"][0] == \
        older["metrics"]["sequence_accuracy"][0]
    assert len(history["metrics"]["token_accuracy"]) == 2


def test_export_again_is_a_no_op_until_the_model_changes(tmp_path):
    run_dir = tmp_path / "run"
    training.train("many_to_one_gru", "example", out=run_dir, epochs=1, **TINY_GRU)
    first = training.export_run(run_dir, samples=4)
    out = run_dir / "export"
    assert first.written == first.paths == [str(out / "saved_model" / "1"),
                                            str(out / "model.tflite")]
    before = files(out)

    again = training.export_run(run_dir, samples=4)
    assert again.written == [] and again.paths == first.paths
    assert again.report == str(first.report)
    assert files(out) == before

    # Training on changes model.keras: both artifacts are stale; the SavedModel becomes the
    # next version (TF Serving moves to it), the TFLite file is replaced.
    training.train("many_to_one_gru", "example", out=run_dir, epochs=2, **TINY_GRU)
    changed = training.export_run(run_dir, samples=4)
    assert changed.written == [str(out / "saved_model" / "2"), str(out / "model.tflite")]
    assert (out / "model.tflite").read_bytes() != before["model.tflite"][1]
    assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
    for artifact in changed.report.artifacts:
        assert artifact.max_abs_diff < 1e-5, artifact
    record = json.loads((out / "report.json").read_text())
    assert record["paths"] == changed.paths
    assert training.export_run(run_dir, samples=4).written == []

    # A quantized file asked for later is the only one exported.
    dynamic = training.export_run(run_dir, formats=("tflite",), quantize="dynamic", samples=4)
    assert dynamic.written == [str(out / "model.dynamic.tflite")]

    forced = training.export_run(run_dir, formats=("tflite",), samples=4, overwrite=True)
    assert forced.written == [str(out / "model.tflite")]
