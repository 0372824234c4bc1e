"""Training killed with SIGKILL in the middle of an epoch, then rerun with the same command, loses
at most that epoch: it resumes after the last completed epoch and ends with the weights and
history of an uninterrupted run (tests/training/test_trainer.py covers a kill between epochs).

The killed run kills itself (a callback sends SIGKILL half-way through its second epoch), so the
kill point does not depend on timing.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kzoo  # noqa: F401  (registers the kzoo layers for load_model)

from ..conftest import kzoo_command

# 2 epochs of 16 steps; the kill comes after step 8 of epoch 2.
RUN = ["train", "many_to_one_gru", "--dataset", "example", "--option", "size=128",
       "--batch-size", "8", "--epochs", "2", "--config", "units=8", "--config", "vocab_size=20",
       "--config", "embedding_dim=4", "--quiet"]
KILL_EPOCH, KILL_AFTER_STEP = 1, 8

KILL_MID_EPOCH = textwrap.dedent(f"""
    import os, signal, sys
    import keras
    from kzoo import cli

    class KillMidEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == {KILL_EPOCH} and batch + 1 == {KILL_AFTER_STEP}:
                os.kill(os.getpid(), signal.SIGKILL)

    real_fit = keras.Model.fit

    def fit(self, *args, callbacks=None, **kwargs):
        return real_fit(self, *args, callbacks=[*(callbacks or []), KillMidEpoch()], **kwargs)

    keras.Model.fit = fit
    sys.exit(cli.main(sys.argv[1:]))
""")


def environment():
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def kzoo_train(out):
    return subprocess.Popen([kzoo_command(), *RUN, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=environment())


def finish(process):
    output = process.communicate(timeout=600)[0]
    return process.returncode, output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mid_epoch")
    reference = kzoo_train(tmp / "reference")
    killed = subprocess.Popen([sys.executable, "-c", KILL_MID_EPOCH, *RUN, "--out",
                               str(tmp / "resumed")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=environment())
    killed_code, killed_output = finish(killed)
    after_kill = json.loads((tmp / "resumed" / "history.json").read_text())
    resumed_code, resumed_output = finish(kzoo_train(tmp / "resumed"))
    reference_code, reference_output = finish(reference)
    return dict(tmp=tmp, killed=(killed_code, killed_output), after_kill=after_kill,
                resumed=(resumed_code, resumed_output), reference=(reference_code,
                                                                   reference_output))


def test_sigkill_mid_epoch_loses_only_that_epoch(runs):
    code, output = runs["killed"]
    assert code == -signal.SIGKILL, output
    # Killed in epoch 2: epoch 1 is complete on disk, nothing of epoch 2 is.
    assert runs["after_kill"]["epochs"] == [0]
    code, output = runs["resumed"]
    assert code == 0, output
    assert "resuming" in output and "after epoch 1 of 2" in output


def test_the_resumed_run_ends_as_the_uninterrupted_one(runs):
    tmp = runs["tmp"]
    assert runs["reference"][0] == 0, runs["reference"][1]
    reference = json.loads((tmp / "reference" / "history.json").read_text())
    resumed = json.loads((tmp / "resumed" / "history.json").read_text())
    assert resumed["epochs"] == reference["epochs"] == [0, 1]
    assert resumed["metrics"] == reference["metrics"]
    expected = keras.saving.load_model(tmp / "reference" / "model.keras").get_weights()
    actual = keras.saving.load_model(tmp / "resumed" / "model.keras").get_weights()
    for e, a in zip(expected, actual):
        np.testing.assert_array_equal(a, e)
