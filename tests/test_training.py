"""The trainer: resume after a kill equals an uninterrupted run, two workers equal one, the data
order of an epoch depends on (seed, epoch) only, truncated BPTT cuts and resets correctly,
clipping is on by default for recurrent models."""

import json
import os
import signal
import socket
import subprocess
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo import cli, training

from .conftest import kzoo_command


def environment():
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env

# One tiny run shared by the resume and the multi-worker checks: 256 examples in batches of 8,
# so an epoch (32 steps) lasts long enough to be killed after it.
TINY_RUN = ["train", "many_to_one_gru", "--dataset", "example", "--option", "size=256",
            "--batch-size", "8", "--epochs", "3", "--config", "units=8",
            "--config", "vocab_size=20", "--config", "embedding_dim=4", "--quiet"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


# -- in process -----------------------------------------------------------------------------------
def _batches(count=5):
    return tf.data.Dataset.range(count).map(lambda i: (tf.fill([2], i), tf.fill([2], -i)))


def _firsts(stream):
    return [int(x[0]) for x, _ in stream]


def test_epoch_order_depends_only_on_seed_and_epoch():
    full, steps = training.epoch_stream(_batches(), 0, 4, seed=3)
    tail, _ = training.epoch_stream(_batches(), 2, 4, seed=3)
    order = _firsts(full)
    assert steps == 5 and len(order) == 20
    assert _firsts(tail) == order[10:]                      # what a resumed run sees
    epochs = [order[i:i + 5] for i in range(0, 20, 5)]
    assert all(sorted(e) == [0, 1, 2, 3, 4] for e in epochs)  # each epoch: every batch once
    assert len({tuple(e) for e in epochs}) > 1                 # and in a new order
    other, _ = training.epoch_stream(_batches(), 0, 4, seed=4)
    assert _firsts(other) != order
    capped, steps = training.epoch_stream(_batches(), 0, 2, seed=3, steps_per_epoch=2)
    assert steps == 2 and _firsts(capped) == order[:2] + order[5:7]


def test_tbptt_chunks_are_consecutive_windows_and_the_last_holds_the_remainder():
    x = np.arange(2 * 7 * 1, dtype="float32").reshape(2, 7, 1)
    y = -np.arange(2 * 7, dtype="int32").reshape(2, 7)
    data = tf.data.Dataset.from_tensors((x, y))
    chunks, per_batch = training.tbptt_chunks(data, 3)
    chunks = list(chunks)
    assert per_batch == 3 and len(chunks) == 3             # 3 + 3 + the last 7 % 3 steps
    for (inputs, targets), steps in zip(chunks, [(0, 3), (3, 6), (6, 7)]):
        np.testing.assert_array_equal(inputs, x[:, slice(*steps)])
        np.testing.assert_array_equal(targets, y[:, slice(*steps)])
    whole, per_batch = training.tbptt_chunks(data, 7)
    assert per_batch == 1 and [c[0].shape for c in whole] == [(2, 7, 1)]
    single, per_batch = training.tbptt_chunks(data, 1)
    assert per_batch == 7 and [int(c[1][1, 0]) for c in single] == list(y[1])
    with pytest.raises(ValueError, match="longer than the sequences"):
        training.tbptt_chunks(data, 8)


def test_tbptt_chunks_carry_a_per_sequence_target_whole():
    """A forecast's target (batch, horizon) has no time axis: every chunk gets it, as the loss
    of an untruncated run broadcasts it over every step."""
    x = np.arange(2 * 24, dtype="float32").reshape(2, 24, 1)
    y = np.array([[100.0], [200.0]], "float32")
    chunks, per_batch = training.tbptt_chunks(tf.data.Dataset.from_tensors((x, y)), 10)
    chunks = list(chunks)
    assert per_batch == 3
    assert [c[0].shape for c in chunks] == [(2, 10, 1), (2, 10, 1), (2, 4, 1)]
    for _, targets in chunks:
        np.testing.assert_array_equal(targets, y)


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
    layer = next(l for l in model._flatten_layers() if getattr(l, "stateful", False))
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


def test_text_round_trips_through_a_vocabulary():
    words = ["", "[UNK]", "[START]", "[END]", "twenty", "three", "-"]
    assert training.encode_text("twenty three", words) == [4, 5]
    assert training.encode_text("twenty nine", words) == [4, 1]      # unknown word
    chars = ["", "[UNK]", "[START]", "[END]", "d", "r", "e", "i"]
    assert training.encode_text("drei", chars) == [4, 5, 6, 7]
    assert training.decode_ids([4, 5, 6, 7, 3, 4], chars, end_id=3) == "drei"
    assert training.decode_ids([4, 5, 3], words, end_id=3) == "twenty three"
    assert training.encode_text("5 9", None) == [5, 9]
    with pytest.raises(ValueError, match="token ids"):
        training.encode_text("drei", None)


def test_cli_checks_config_keys_before_training(tmp_path, capsys):
    code = cli.main(["train", "many_to_one_gru", "--dataset", "example", "--config", "unit=8",
                     "--out", str(tmp_path / "run")])
    assert code == 2
    assert "unknown --config key(s) ['unit']" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
