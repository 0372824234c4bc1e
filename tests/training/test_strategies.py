"""Training under ``--strategy mirrored`` (two logical CPU devices) and ``multiworker`` (two worker
processes on 127.0.0.1) reaches the loss one device reaches on the same global batches, for every
I/O pattern; seq2seq also on text batched by length, whose batches come in any size.

Each strategy runs in fresh processes (two logical CPUs can only be made before TensorFlow
starts), the runs of a process one after the other, as ``kzoo.training.train`` calls in one
program.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ..conftest import free_port
from ..export.conftest import FAST_MODELS, small_config

# Runs the jobs given as JSON, one ``kzoo.training.train`` call each, and prints one result line
# per job: its loss history and the strategy's replica count, or the ValueError it raised.
DRIVER = """
import json, sys
from kzoo import training
for job in json.loads(sys.argv[1]):
    try:
        run = training.train(**job)
        result = {"loss": run.history["metrics"]["loss"],
                  "replicas": training.make_strategy(job["strategy"]).num_replicas_in_sync}
    except ValueError as error:
        result = {"error": str(error)}
    print("RESULT", json.dumps({"out": job["out"], **result}), flush=True)
"""

# number_words below 30 in batches of 8 bucketed by length: 24 training examples in batches of
# 8, 8, 2, 5 and 1 (a replica's share of the last one was empty), 3 validation examples. The
# vocabularies' sizes come from the dataset.
NUMBER_WORDS = dict(dataset="number_words", dataset_options={"max_number": 30},
                    steps_per_epoch=None,
                    model_config={"units": 8, "source_embedding_dim": 8,
                                  "target_embedding_dim": 8})


def environment(task=None, ports=()):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if task is not None:
        env["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": task}})
    return env


def job(out, model, strategy, **overrides):
    settings = dict(model_name=model, dataset="example", out=str(out), epochs=1, batch_size=8,
                    steps_per_epoch=2, strategy=strategy, model_config=small_config(model),
                    dataset_options={"size": 16}, verbose=0, plots=False)
    return {**settings, **overrides}


def start(jobs, env):
    return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(jobs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def results(process):
    """``({out: result}, output)`` of a driver process."""
    output = process.communicate(timeout=900)[0]
    assert process.returncode == 0, output
    lines = [json.loads(line[len("RESULT "):]) for line in output.splitlines()
             if line.startswith("RESULT ")]
    return {line.pop("out"): line for line in lines}, output


def test_mirrored_seq2seq_trains_on_text_batches_and_equals_one_device(tmp_path):
    """Text batched by length: a batch of 5 gave the replicas shares of 3 and 2 (Keras' first
    build averages the shares), one of 1 an empty share ("Tried to stack elements of an empty
    list"); each batch is now cut to a multiple of the replica count. And seq2seq's loss counted
    each replica's mean in full: twice the loss and the gradient of one device. Several mirrored
    runs share one strategy (a second one collided with the first's all-reduces)."""
    mirrored = start([
        job(tmp_path / "number_words", "seq2seq_attention", "mirrored",
            data_dir=str(tmp_path / "data"), **NUMBER_WORDS),
        job(tmp_path / "mirrored", "seq2seq_attention", "mirrored"),
        job(tmp_path / "tbptt", "many_to_many_gru", "mirrored", tbptt=2),
        job(tmp_path / "default", "seq2seq_attention", "default")], environment())
    runs, output = results(mirrored)
    text = runs[str(tmp_path / "number_words")]
    assert text.get("replicas") == 2, output
    assert len(text["loss"]) == 1 and np.isfinite(text["loss"][0])
    np.testing.assert_allclose(runs[str(tmp_path / "mirrored")]["loss"],
                               runs[str(tmp_path / "default")]["loss"], rtol=1e-4)
    assert runs[str(tmp_path / "tbptt")] == {
        "error": "--tbptt trains a stateful model, whose carried state has one batch on one "
                 "device; use --strategy default, not 'mirrored'"}, output
    assert not (tmp_path / "tbptt").exists()


@pytest.mark.slow
def test_every_pattern_trains_under_mirrored_and_multiworker_as_on_one_device(tmp_path):
    """One model per I/O pattern (and seq2seq on text batched by length for the workers): the
    first epoch's loss under each strategy equals one device's (up to the rounding of sums over
    half batches), and the two workers' equals mirrored's."""
    one_process = [job(tmp_path / "mirrored" / model, model, "mirrored") for model in FAST_MODELS]
    one_process += [job(tmp_path / "default" / model, model, "default") for model in FAST_MODELS]
    processes = {"mirrored": start(one_process, environment())}
    ports = [free_port(), free_port()]
    for index in range(2):
        worker_jobs = [job(tmp_path / "multiworker" / model, model, "multiworker")
                       for model in FAST_MODELS]
        worker_jobs.append(job(tmp_path / "multiworker" / "number_words", "seq2seq_attention",
                               "multiworker", data_dir=str(tmp_path / f"data{index}"),
                               **NUMBER_WORDS))
        processes[f"worker{index}"] = start(worker_jobs, environment(index, ports))
    runs = {name: results(process) for name, process in processes.items()}
    one_device = runs["mirrored"][0]

    for model in FAST_MODELS:
        reference = one_device[str(tmp_path / "default" / model)]["loss"]
        mirrored = one_device[str(tmp_path / "mirrored" / model)]
        assert mirrored.get("replicas") == 2, (model, runs["mirrored"][1])
        np.testing.assert_allclose(mirrored["loss"], reference, rtol=1e-4, err_msg=model)
        chief, worker = (runs[name][0][str(tmp_path / "multiworker" / model)]
                         for name in ("worker0", "worker1"))
        assert chief.get("replicas") == 2, (model, runs["worker0"][1])
        assert chief["loss"] == worker["loss"], model
        # Both split each batch into the same two shares: equal but for float rounding. (The
        # workers' own loop counted the padded steps of the example's token sequences.)
        np.testing.assert_allclose(chief["loss"], mirrored["loss"], rtol=1e-6, err_msg=model)
    for name in ("worker0", "worker1"):
        text = runs[name][0][str(tmp_path / "multiworker" / "number_words")]
        assert len(text["loss"]) == 1 and np.isfinite(text["loss"][0]), runs[name][1]
