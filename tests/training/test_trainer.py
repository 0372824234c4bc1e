"""The trainer: resume after a kill equals an uninterrupted run, two workers equal one, truncated
BPTT trains a stateful model and resets its state per sequence, clipping is on by default for
recurrent models, rerunning a finished run changes nothing, an older run's history resumes."""

import json
import os
import signal
import subprocess
import time
import warnings

import keras
import numpy as np
import pytest

import kzoo
from kzoo import training

from ..conftest import file_snapshot as files
from ..conftest import free_port, kzoo_command
from .conftest import TINY_GRU, TINY_SEQ2SEQ


def environment():
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


# One tiny run shared by the resume and the multi-worker checks: 256 examples in batches of 8,
# so an epoch (32 steps) lasts long enough to be killed after it.
TINY_RUN = ["train", "many_to_one_gru", "--dataset", "example", "--option", "size=256",
            "--batch-size", "8", "--epochs", "3", "--config", "units=8",
            "--config", "vocab_size=20", "--config", "embedding_dim=4", "--quiet"]



def start(args, env=None, log=None):
    return subprocess.Popen([kzoo_command(), *map(str, args)], env=env or environment(),
                            stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT, text=True)



def weights(run_dir):
    return keras.saving.load_model(run_dir / "model.keras").get_weights()



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Started together: an uninterrupted run, a run killed after its first epoch (then rerun),
    and two multi-worker processes on 127.0.0.1 training the same run."""
    tmp = tmp_path_factory.mktemp("runs")
    reference = start([*TINY_RUN, "--out", tmp / "reference"])
    killed = start([*TINY_RUN, "--out", tmp / "resumed"])
    ports = [free_port(), free_port()]
    workers = []
    for index in range(2):
        env = environment()
        env["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index}})
        workers.append(start([*TINY_RUN, "--strategy", "multiworker", "--out",
                              tmp / "multiworker"], env=env))

    metadata = tmp / "resumed" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1:
            break
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed_output = killed.communicate()[0]
    killed_history = json.loads((tmp / "resumed" / "history.json").read_text())
    resumed = start([*TINY_RUN, "--out", tmp / "resumed"])
    outputs = {name: process.communicate(timeout=300)[0] for name, process in
               [("reference", reference), ("resumed", resumed), ("worker0", workers[0]),
                ("worker1", workers[1])]}
    codes = {"reference": reference.returncode, "resumed": resumed.returncode,
             "worker0": workers[0].returncode, "worker1": workers[1].returncode}
    return dict(tmp=tmp, outputs=outputs, codes=codes, killed_code=killed.returncode,
                killed_output=killed_output, killed_history=killed_history)



def test_killed_training_resumes_to_the_uninterrupted_result(runs):
    tmp = runs["tmp"]
    assert runs["killed_code"] == -signal.SIGKILL, runs["killed_output"]
    assert 1 <= len(runs["killed_history"]["epochs"]) < 3  # killed between epochs 1 and 3
    for name in ("reference", "resumed"):
        assert runs["codes"][name] == 0, runs["outputs"][name]
    assert "resuming" in runs["outputs"]["resumed"]
    reference = json.loads((tmp / "reference" / "history.json").read_text())
    resumed = json.loads((tmp / "resumed" / "history.json").read_text())
    assert resumed["epochs"] == reference["epochs"] == [0, 1, 2]
    assert resumed["metrics"] == reference["metrics"]
    for expected, actual in zip(weights(tmp / "reference"), weights(tmp / "resumed")):
        np.testing.assert_array_equal(actual, expected)



def test_two_workers_end_equal_and_equal_one_worker_with_the_global_batch(runs):
    tmp = runs["tmp"]
    for name in ("worker0", "worker1", "reference"):
        assert runs["codes"][name] == 0, runs["outputs"][name]
    chief = weights(tmp / "multiworker")
    other = weights(tmp / "multiworker" / "workers" / "1")
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    initial = kzoo.build("many_to_one_gru", units=8, vocab_size=20, embedding_dim=4)
    moved = max(np.abs(a - b).max() for a, b in zip(chief, initial.get_weights()))
    assert moved > 0.05
    # Summed shares of a global batch of 8 equal fit on that batch, up to float rounding.
    for a, b in zip(chief, weights(tmp / "reference")):
        np.testing.assert_allclose(a, b, atol=2e-5)
    history = json.loads((tmp / "multiworker" / "history.json").read_text())
    reference = json.loads((tmp / "reference" / "history.json").read_text())
    np.testing.assert_allclose(history["metrics"]["loss"], reference["metrics"]["loss"],
                               rtol=1e-4)



def test_tbptt_trains_a_stateful_model_whose_state_resets_per_sequence(tmp_path):
    run = training.train("many_to_many_gru", "example", out=tmp_path / "run", epochs=1,
                         batch_size=4, tbptt=2, dataset_options={"size": 8},
                         model_config={"units": 4, "vocab_size": 10, "embedding_dim": 3},
                         verbose=0, plots=False, deterministic=False)
    assert run.config["model_config"]["stateful"] is True
    assert run.config["model_config"]["batch_size"] == 4
    assert len(run.history["metrics"]["loss"]) == 1

    # The callback zeroes the carried state exactly at the first chunk of each sequence.
    model = run.model
    layer = next(x for x in model._flatten_layers() if getattr(x, "stateful", False))
    tokens = np.ones((4, 2), "int32")
    resets = []
    callback = training.ResetStatesEvery(2)
    callback.set_model(model)
    for batch in range(4):
        callback.on_train_batch_begin(batch)
        resets.append(all(not np.any(keras.ops.convert_to_numpy(s)) for s in layer.states))
        model(tokens)
    assert resets == [True, False, True, False]



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kzoo_data"))



@pytest.mark.parametrize("cell,window", [(cell, window) for cell in ("lstm", "gru", "rnn")
                                         for window in (4, 12, 24)] + [("gru", 5)])
def test_tbptt_trains_on_a_forecasting_dataset(cell, window, data_dir, tmp_path):
    """temperature: 24-hour windows of one feature, a (batch, 1) target per window (a stride of
    24 hours keeps the split small). K = 24 is one chunk, 5 leaves a last chunk of 4 steps. A
    stateful model on one feature, and the per-window targets, both failed in the first epoch."""
    run = training.train(f"many_to_many_{cell}", "temperature", out=tmp_path / "run", epochs=1,
                         batch_size=8, steps_per_epoch=2, tbptt=window, data_dir=data_dir,
                         dataset_options={"stride": 24}, model_config={"units": 4},
                         verbose=0, plots=False, deterministic=False)
    assert run.config["model_config"]["stateful"] is True
    assert run.config["model_config"]["input_dim"] == 1
    assert len(run.history["metrics"]["loss"]) == 1
    assert np.isfinite(run.history["metrics"]["loss"][0])



def test_clipping_is_on_for_recurrent_models_and_off_for_the_mlp():
    assert training.default_clipnorm("many_to_one_lstm") == 1.0
    assert training.default_clipnorm("seq2seq_attention") == 1.0
    assert training.default_clipnorm("one_to_one_mlp") is None



def test_a_different_run_in_the_same_directory_is_refused(tmp_path):
    common = dict(out=tmp_path, epochs=1, batch_size=8, dataset_options={"size": 8},
                  model_config={"units": 4, "input_dim": 3}, verbose=0, plots=False,
                  deterministic=False)
    training.train("one_to_one_mlp", "example", **common)
    assert (tmp_path / "model.keras").exists()
    with pytest.raises(ValueError, match="learning_rate"):
        training.train("one_to_one_mlp", "example", learning_rate=0.5, **common)



# -- rerunning ------------------------------------------------------------------------------------
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

