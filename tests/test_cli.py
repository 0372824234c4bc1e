"""The `kzoo` command through its installed entry point, in subprocesses: every command on a
tiny model and dataset (exit 0, the files a run directory promises), and wrong usage (exit 2,
exactly one line on stderr, no traceback, even though TensorFlow's C++ runtime logs to fd 2)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import kzoo_command

# A seq2seq_attention small enough to train, export and decode in seconds.
TINY_SEQ2SEQ = ["--config", "units=8", "--config", "source_vocab_size=12",
                "--config", "target_vocab_size=12", "--config", "source_embedding_dim=4",
                "--config", "target_embedding_dim=4"]


def environment():
    env = dict(os.environ)
    # The command must be quiet without the caller's help.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("TF_CONFIG", None)
    return env


def start(*args, cwd=None):
    return subprocess.Popen([kzoo_command(), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment(), cwd=cwd)


def finish(process, timeout=240):
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run(*args, cwd=None):
    return finish(start(*args, cwd=cwd))


def assert_ok(result):
    assert result.returncode == 0, f"{result.args}\nstdout:\n{result.stdout}\n" \
                                   f"stderr:\n{result.stderr}"


USAGE_ERRORS = {
    "unknown model": ["train", "seq2seq_atention", "--dataset", "example"],
    "unknown dataset": ["train", "many_to_one_gru", "--dataset", "imaginary"],
    "missing run dir (evaluate)": ["evaluate", "runs/does-not-exist"],
    "missing run dir (export)": ["export", "runs/does-not-exist"],
    "not a run (predict)": ["predict", "{tmp}", "twenty-three"],
    "bad epochs": ["train", "many_to_one_gru", "--dataset", "example", "--epochs", "0"],
    "bad strategy": ["train", "many_to_one_gru", "--dataset", "example",
                     "--strategy", "everywhere"],
    "bad config syntax": ["train", "many_to_one_gru", "--dataset", "example",
                          "--config", "units"],
    "bad format": ["export", "{tmp}", "--format", "onnx"],
    "bad quantize": ["export", "{tmp}", "--quantize", "int4"],
    "unknown command": ["fly"],
    "no command": [],
}


class Lazy:
    """Processes started together (the machine has 2 cores and each TensorFlow import costs
    seconds of one), finished when a test first asks for one."""

    def __init__(self, processes):
        self.processes, self.results = processes, {}

    def __getitem__(self, name):
        if name not in self.results:
            self.results[name] = finish(self.processes[name])
        return self.results[name]


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """Everything that needs no trained run, started at once: the wrong command lines, list,
    info, bench, and the training of the tiny translator the chain test continues."""
    tmp = tmp_path_factory.mktemp("cli")  # exists, but holds no run
    processes = {name: start(*[a.replace("{tmp}", str(tmp)) for a in args])
                 for name, args in USAGE_ERRORS.items()}
    processes["list"] = start("list")
    processes["info"] = start("info", "seq2seq_attention")
    processes["bench"] = start("bench", "many_to_one_gru", "--batch-size", "4", "--steps", "2",
                               "--config", "units=8", "--config", "vocab_size=20")
    run_dir = tmp / "translator"
    processes["train"] = start("train", "seq2seq_attention", "--dataset", "example",
                               "--option", "size=16", "--batch-size", "8", "--epochs", "2",
                               *TINY_SEQ2SEQ, "--out", run_dir)
    lazy = Lazy(processes)
    lazy.tmp, lazy.run_dir = tmp, run_dir
    yield lazy
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def usage_errors(commands):
    return commands


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_wrong_usage_exits_2_with_one_line(usage_errors, case):
    result = usage_errors[case]
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{case}: stderr has {len(lines)} lines:\n{result.stderr}"
    assert "Traceback" not in result.stderr and lines[0].startswith("kzoo")
    assert "error" in lines[0]


def test_usage_error_messages_name_the_problem(usage_errors):
    assert "seq2seq_attention" in usage_errors["unknown model"].stderr  # did you mean
    assert "'imaginary'" in usage_errors["unknown dataset"].stderr
    assert "example" in usage_errors["unknown dataset"].stderr        # the valid names
    assert "does-not-exist" in usage_errors["missing run dir (evaluate)"].stderr
    assert "not a finished run" in usage_errors["not a run (predict)"].stderr
    assert "--epochs" in usage_errors["bad epochs"].stderr


def test_list_info_and_bench(commands):
    listed, info, bench = commands["list"], commands["info"], commands["bench"]
    for result in (listed, info, bench):
        assert_ok(result)
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["name", "pattern", "cell", "parameters"]
    by_name = {row[0]: row for row in rows[1:]}
    assert len(by_name) == 32
    assert by_name["seq2seq_attention"][1:3] == ["seq2seq", "lstm"]
    assert by_name["one_to_one_mlp"][3] == "118,282"  # 784*128+128 + 128*128+128 + 128*10+10
    assert "pattern: seq2seq" in info.stdout and "parameters: " in info.stdout
    assert_describes(info.stdout, "seq2seq_attention")
    assert "many_to_one_gru" in bench.stdout and "train ms/batch" in bench.stdout
    assert "Traceback" not in listed.stderr + info.stderr + bench.stderr


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
def test_a_reader_that_stops_early_ends_the_command_quietly(unbuffered):
    """``kzoo list | head -1``: once the reader has gone, kzoo stops without a message and with
    the status SIGPIPE gives a Unix tool (128 + 13), whether its stdout is buffered or not."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes its first line
    env = environment()
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    try:
        result = subprocess.run([kzoo_command(), "list"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")


def assert_describes(stdout, name):
    """``kzoo info NAME``'s output: the whole description and every config key's default and
    explanation (lines wrapped, so compared with whitespace collapsed)."""
    import kzoo

    info, text = kzoo.model_info(name), " ".join(stdout.split())
    assert f"{name}: {info.description}" in text
    for key, value in info.default_config.items():
        assert f"{key}={json.dumps(value)} {info.arguments[key]}" in text, key


# The `kzoo` entry point (kzoo.cli:main, run as a program named kzoo), reporting afterwards
# whether TensorFlow or Keras was imported.
WITHOUT_TENSORFLOW = """
    import sys

    sys.argv[0] = "kzoo"
    from kzoo.cli import main

    code = main(sys.argv[1:])
    print("imported:", [m for m in ("tensorflow", "keras") if m in sys.modules])
    sys.exit(code)
"""

METADATA_COMMANDS = {
    "list": (["list"], 0),
    "list a pattern": (["list", "seq2seq"], 0),
    "info": (["info", "many_to_many_convlstm"], 0),
    "unknown model (info)": (["info", "seq2seq_atention"], 2),
    "unknown model (train)": (["train", "seq2seq_atention", "--dataset", "x"], 2),
    "unknown model (bench)": (["bench", "many_to_one_lstm", "many_to_one_lsm"], 2),
    "unknown dataset (train)": (["train", "many_to_one_gru", "--dataset", "numbr_words"], 2),
}


@pytest.mark.parametrize("case", list(METADATA_COMMANDS))
def test_list_info_and_model_name_checks_need_no_tensorflow(case):
    args, code = METADATA_COMMANDS[case]
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(WITHOUT_TENSORFLOW), *args],
                            capture_output=True, text=True, env=environment(), timeout=120)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout.splitlines()[-1] == "imported: []", result.stdout
    if case.startswith("unknown model"):
        assert "unknown model" in result.stderr and "did you mean" in result.stderr
        assert "(`kzoo list` lists all 32)" in result.stderr, result.stderr  # not the Python API
    if case == "unknown dataset (train)":
        assert result.stderr.startswith("kzoo train: error: unknown dataset 'numbr_words' (did "
                                        "you mean 'number_words'?); datasets: example, "), \
            result.stderr
    if case == "info":
        assert_describes(result.stdout, "many_to_many_convlstm")
    if case == "list a pattern":
        rows = [line.split() for line in result.stdout.splitlines()[1:-1]]
        assert [row[0] for row in rows] == ["seq2seq_attention", "seq2seq_gru", "seq2seq_lstm",
                                            "seq2seq_luong", "seq2seq_rnn"]
        assert all(row[1] == "seq2seq" and row[3].replace(",", "").isdigit() for row in rows)


def test_dataset_names_checked_without_tensorflow_are_the_live_catalog():
    import kzoo.cli
    import kzoo.datasets
    from kzoo import training

    assert list(kzoo.cli.DATASETS) == kzoo.datasets.list_datasets(), \
        "kzoo.cli.DATASETS must name every kzoo.datasets dataset"
    assert training.list_datasets() == [training.EXAMPLE_DATASET, *kzoo.cli.DATASETS]


def test_train_evaluate_export_predict_a_translator(commands, tmp_path):
    run_dir, result = commands.run_dir, commands["train"]
    assert_ok(result)
    assert "epoch 2:" in result.stdout and "loss" in result.stdout  # the final metrics line
    for name in ("config.json", "model.keras", "history.json", "backup/latest.weights.h5",
                 "plots/training_curves.png", "plots/attention.png"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    assert list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "seq2seq_attention" and config["clipnorm"] == 1.0
    assert config["model_config"]["units"] == 8
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epochs"] == [0, 1] and len(history["metrics"]["loss"]) == 2

    # evaluate, export and predict read the run directory concurrently.
    evaluate = start("evaluate", run_dir)
    export = start("export", run_dir, "--format", "tflite", "--quantize", "dynamic",
                   "--samples", "4")
    predict = start("predict", run_dir, "5 6 7", "4 3", "--plot", tmp_path / "attention.png")
    evaluate, export, predict = map(finish, (evaluate, export, predict))
    for result in (evaluate, export, predict):
        assert_ok(result)
    assert "exact_match" in evaluate.stdout and "token_accuracy" in evaluate.stdout
    assert json.loads((run_dir / "eval.json").read_text())["metrics"]["loss"] > 0
    # The float and dynamic files come from one trace (kzoo.export.tflite_files); this model
    # is too small for any weight to be quantized, so they may be the same size.
    for name in ("model.tflite", "model.dynamic.tflite"):
        assert (run_dir / "export" / name).stat().st_size > 0, name
    assert "max |diff|" in export.stdout and "model.dynamic.tflite" in export.stdout
    lines = predict.stdout.strip().splitlines()
    assert [line.split(" ->")[0] for line in lines] == ["5 6 7", "4 3"]
    assert (tmp_path / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_checks_config_keys_before_training(tmp_path, capsys):
    from kzoo import cli

    code = cli.main(["train", "many_to_one_gru", "--dataset", "example", "--config", "unit=8",
                     "--out", str(tmp_path / "run")])
    assert code == 2
    assert "unknown --config key(s) ['unit']" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

