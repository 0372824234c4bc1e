"""The README's main command, on a small config, in subprocesses as a user runs it:

    kzoo train seq2seq_attention --dataset number_words --option max_number=1000 --epochs 40 \
        --out runs/translator && kzoo export runs/translator && kzoo predict runs/translator \
        "twenty-three"

It prints progress and results and nothing else (no TensorFlow, converter, LiteRT or TFDS log
line: stderr stays empty), and it is safe to rerun: train says the run is done and export that
its files are up to date, and neither changes a file. ``--verbose`` shows what is hidden.
"""

import subprocess
import sys

import pytest

from .conftest import file_snapshot as files
from .test_cli import assert_ok, environment, finish, start

# What the commands printed before they were quiet (each a line of some library's log).
NOISE = ("table_initializer", "'NoneType' object has no attribute 'name'",
         "Using custom data configuration", "Downloading and preparing dataset",
         "Subsequent calls will reuse this data", "Generating splits", "failed call to cuInit",
         "absl::InitializeLog", "XNNPACK", "Skipping variable loading", "WARNING:")


def assert_quiet(result):
    assert_ok(result)
    assert result.stderr == "", f"{result.args}\nstderr:\n{result.stderr}"
    for noise in NOISE:
        assert noise not in result.stdout, f"{result.args}: {noise!r} in\n{result.stdout}"


@pytest.fixture(scope="module")
def main_command(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("main_command")
    run_dir, data_dir = tmp / "runs" / "translator", tmp / "data"   # data prepared afresh
    train = ["train", "seq2seq_attention", "--dataset", "number_words", "--option",
             "max_number=100", "--epochs", "1", "--steps-per-epoch", "2", "--config", "units=8",
             "--config", "source_embedding_dim=4", "--config", "target_embedding_dim=4",
             "--out", run_dir, "--data-dir", data_dir]
    python_use = subprocess.Popen(
        [sys.executable, "-c", "import kzoo, tensorflow as tf; tf.constant(1) + 1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    results = {"train": finish(start(*train))}
    results["python"] = finish(python_use)
    assert_ok(results["train"])
    later = {"export": start("export", run_dir, "--data-dir", data_dir, "--samples", "4"),
             "predict": start("predict", run_dir, "twenty-three")}
    results.update({name: finish(process) for name, process in later.items()})
    before = files(run_dir)
    results["train again"] = finish(start("-v", *train))
    results["export again"] = finish(start("export", run_dir, "--data-dir", data_dir,
                                           "--samples", "4"))
    results["unchanged"] = files(run_dir) == before
    results["run_dir"] = run_dir
    return results


@pytest.mark.parametrize("command", ["train", "export", "predict", "export again"])
def test_a_command_prints_progress_and_results_only(main_command, command):
    assert_quiet(main_command[command])


def test_importing_kzoo_prints_nothing(main_command):
    assert_quiet(main_command["python"])


def test_the_results(main_command):
    assert "epoch 1: loss" in main_command["train"].stdout
    assert "token_accuracy" in main_command["train"].stdout
    assert "wrote" in main_command["export"].stdout and "max |diff|" in \
        main_command["export"].stdout
    assert main_command["predict"].stdout.strip()


def test_rerunning_the_main_command_changes_nothing(main_command):
    again, export = main_command["train again"], main_command["export again"]
    assert_ok(again)
    assert "has trained 1 epoch(s) already (--epochs 1); nothing to do" in again.stdout
    assert "token_accuracy" in again.stdout   # the final metrics line, as the first run's
    run_dir = main_command["run_dir"]
    assert f"{run_dir / 'export'} is up to date with {run_dir / 'model.keras'}; nothing to " \
           f"export" in export.stdout
    assert main_command["unchanged"]


def test_verbose_shows_what_is_hidden(main_command):
    assert "Using custom data configuration" in main_command["train again"].stderr
