"""Bad input at every public entry: ``kzoo.build``, layer calls, zoo model calls and decoding,
``kzoo.datasets.load``, ``kzoo.export.*``, run loading and every ``kzoo`` command. Each row of the
table gives the call and the error it must raise, with the sentence that names the problem; on
the command line: exit code 2 and one line on stderr, never a traceback.

Inputs that are not errors have their documented behaviour tested at the end (NaN/Inf, fully
masked rows, a batch of 0, float token ids); the README (Reliability) lists them.
"""

import dataclasses
import os
import re
import shutil
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.datasets
import kzoo.export
from kzoo import cli, training

L = kzoo.layers
VOCAB = 50


@dataclasses.dataclass
class World:
    """What the rows call: small models, their exports, a finished run and broken copies."""

    tmp: object
    model: object
    seq2seq: object
    served_seq2seq: object
    a_file: str
    base_dir: str
    tflite: str
    run: str


def truncate(path, keep=0.5):
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: int(len(data) * keep)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    keras.utils.set_random_seed(0)
    model = kzoo.build("many_to_one_lstm", vocab_size=VOCAB, embedding_dim=8, units=8)
    seq2seq = kzoo.build("seq2seq_attention", source_vocab_size=20, target_vocab_size=20,
                         units=8, source_embedding_dim=4, target_embedding_dim=4)
    a_file = str(tmp / "a_file")
    open(a_file, "w").close()
    base_dir = kzoo.export.saved_model(model, tmp / "serving" / "lstm")[:-2]
    tflite = kzoo.export.tflite(model, tmp / "lstm.tflite")
    for name in ("truncated.tflite", "empty.tflite"):
        shutil.copy(tflite, tmp / name)
    truncate(tmp / "truncated.tflite")
    truncate(tmp / "empty.tflite", keep=0)
    os.makedirs(tmp / "no_version" / "latest" / "variables")
    served = kzoo.export.saved_model(seq2seq, tmp / "serving" / "translator")
    served_seq2seq = tf.saved_model.load(served).signatures["serving_default"]
    # A finished run (not deterministic: that switch is process-wide) and two broken copies.
    run = str(tmp / "run")
    training.train("many_to_one_gru", "example", out=run, epochs=1, batch_size=8,
                   model_config=dict(units=4, vocab_size=20, embedding_dim=4),
                   dataset_options={"size": 16}, verbose=0, plots=False, deterministic=False)
    shutil.copytree(run, tmp / "corrupt_model")
    truncate(tmp / "corrupt_model" / "model.keras", keep=0.3)
    shutil.copytree(run, tmp / "truncated_config")
    truncate(tmp / "truncated_config" / "config.json")
    return World(tmp=tmp, model=model, seq2seq=seq2seq, served_seq2seq=served_seq2seq,
                 a_file=a_file, base_dir=base_dir, tflite=tflite, run=run)


def lstm(**kwargs):
    return L.LSTM(4, **kwargs)


def built_lstm(features=3, **kwargs):
    layer = lstm(**kwargs)
    layer(np.zeros((1, 2, features), np.float32))
    return layer


X = np.zeros((2, 5, 3), np.float32)
IDS = np.array([[1, 2]], np.int32)
BAD_IDS = tf.errors.InvalidArgumentError
IDS_MESSAGE = r"token ids must be in \[0, 50\) \(the vocabulary size; 0 is padding\)"

# (id, call(world), exception, regex the message must match)
CASES = [
    # -- kzoo.build ------------------------------------------------------------------------------
    ("build: unknown model", lambda w: kzoo.build("many_to_one_lstmm"), ValueError,
     r"unknown model 'many_to_one_lstmm'; did you mean many_to_one_lstm"),
    ("build: not a name", lambda w: kzoo.build(None), ValueError, r"unknown model None"),
    ("build: unknown config key", lambda w: kzoo.build("many_to_one_lstm", unit=8), ValueError,
     r"many_to_one_lstm: unknown config key\(s\) \['unit'\]"),
    ("build: units 0", lambda w: kzoo.build("many_to_one_gru", units=0), ValueError,
     r"`units` must be a positive integer, got 0"),
    ("build: units of the wrong type", lambda w: kzoo.build("many_to_one_gru", units="8"),
     ValueError, r"`units` must be a positive integer, got '8'"),
    ("build: dropout out of range", lambda w: kzoo.build("many_to_one_deep_lstm", dropout=1.5),
     ValueError, r"`dropout` must be a float in \[0, 1\), got 1.5"),
    # -- layers ----------------------------------------------------------------------------------
    ("layer: wrong rank", lambda w: lstm()(np.zeros((2, 3), np.float32)), ValueError,
     r"LSTM layer '.*' expects inputs of rank 3 \(batch, time, features\), got shape \(2, 3\)"),
    ("layer: string inputs", lambda w: lstm()(tf.constant([[["a"]]])), TypeError,
     r"expects numeric inputs, got string"),
    ("layer: empty sequence", lambda w: lstm()(np.zeros((2, 0, 4), np.float32)), ValueError,
     r"got a sequence of zero time steps"),
    ("layer: other feature size", lambda w: built_lstm(3)(np.zeros((1, 2, 5), np.float32)),
     ValueError, r"was built for inputs with last dimension 3, got shape \(1, 2, 5\)"),
    ("layer: mask of the wrong rank", lambda w: lstm()(X, mask=np.ones((2, 5, 1), bool)),
     ValueError, r"expects a mask of shape \(batch, time\), got shape \(2, 5, 1\)"),
    ("layer: wrong number of initial states",
     lambda w: lstm()(X, initial_state=[np.zeros((2, 4), np.float32)]), ValueError,
     r"expects 2 initial state tensor\(s\), got 1"),
    ("layer: negative units", lambda w: L.GRU(-3), ValueError,
     r"`units` must be a positive integer, got -3"),
    ("layer: unknown merge mode", lambda w: L.Bidirectional(lstm(), merge_mode="max"),
     ValueError, r"`merge_mode` must be one of .*, got 'max'"),
    ("layer: Bidirectional of a non-recurrent layer",
     lambda w: L.Bidirectional(keras.layers.Dense(3)), ValueError,
     r"`layer` must be a recurrent layer with `go_backwards`"),
    ("layer: Jordan teacher of the wrong width",
     lambda w: L.Jordan(4, 3)(X, teacher_outputs=np.zeros((2, 5, 2), np.float32)), ValueError,
     r"expects teacher_outputs of shape \(batch, time, 3\), got \(2, 5, 2\)"),
    ("layer: unknown attention score", lambda w: L.LuongAttention(score="cosine"), ValueError,
     r"`score` must be one of"),
    ("layer: string token ids", lambda w: L.TokenEmbedding(VOCAB, 4)(tf.constant([["a"]])),
     TypeError, r"expects integer token ids, got string"),
    # -- zoo models and decoding -----------------------------------------------------------------
    ("model: id >= vocabulary size", lambda w: w.model(np.array([[1, 50, 2]], np.int32)),
     BAD_IDS, IDS_MESSAGE),
    ("model: negative id", lambda w: w.model(np.array([[1, -1, 2]], np.int32)), BAD_IDS,
     IDS_MESSAGE),
    ("model: id >= vocabulary size in predict",
     lambda w: w.model.predict(np.array([[3, 999]], np.int32), verbose=0), BAD_IDS,
     IDS_MESSAGE),
    ("model: wrong rank", lambda w: w.model(np.zeros((2, 3, 4), np.int32)), ValueError,
     r"Expected shape \(None, None\), but input has incompatible shape \(2, 3, 4\)"),
    ("model: empty sequences", lambda w: w.model(np.zeros((2, 0), np.int32)), ValueError,
     r"got a sequence of zero time steps"),
    ("seq2seq: absurd max_length", lambda w: w.seq2seq.generate([[3, 4]], max_length=10**9),
     ValueError, r"`max_length` must be an integer in \[1, 10000\], got 1000000000"),
    ("seq2seq: float source", lambda w: w.seq2seq.generate(np.ones((1, 3), np.float32)),
     ValueError, r"`source_ids` must be integer token ids of shape \(batch, time\), got float32"),
    ("seq2seq: source id >= vocabulary size", lambda w: w.seq2seq.generate([[3, 20]]),
     BAD_IDS, r"token ids must be in \[0, 20\)"),
    ("served seq2seq: absurd max_length",
     lambda w: w.served_seq2seq(source_ids=tf.constant([[3, 4]]),
                                max_length=tf.constant(10**9)),
     BAD_IDS, r"decoding: `max_length` must be at most 10000"),
    ("one_to_many: absurd max_length",
     lambda w: kzoo.models.one_to_many.generate(None, None, max_length=10**7), ValueError,
     r"`max_length` must be an integer in \[1, 10000\]"),
    # -- kzoo.datasets.load ----------------------------------------------------------------------
    ("datasets: unknown name", lambda w: kzoo.datasets.load("numbr_words"), ValueError,
     r"unknown dataset 'numbr_words' \(did you mean 'number_words'\?\); datasets: "),
    ("datasets: unknown split", lambda w: kzoo.datasets.load("number_words", split="dev"),
     ValueError, r"dataset 'number_words': unknown split 'dev'; splits: train, validation"),
    ("datasets: unknown option", lambda w: kzoo.datasets.load("adding", colour=1),
     ValueError, r"dataset 'adding': unknown option\(s\) \['colour'\]; options \(with "),
    ("datasets: batch of 0", lambda w: kzoo.datasets.load("adding", batch_size=0),
     ValueError, r"dataset 'adding': `batch_size` must be a positive integer, got 0"),
    ("datasets: catalog dataset not prepared",
     lambda w: kzoo.datasets.load("imdb_reviews", data_dir=str(w.tmp / "no_tfds")), ValueError,
     r"'imdb_reviews' is not prepared in data_dir=.* and kzoo never downloads"),
    # -- kzoo.export -----------------------------------------------------------------------------
    ("export: not a model", lambda w: kzoo.export.saved_model("model", w.tmp / "x"), TypeError,
     r"kzoo.export.saved_model: `model` must be a keras.Model"),
    ("export: unbuilt model",
     lambda w: kzoo.export.tflite(keras.Sequential([lstm()]), w.tmp / "u.tflite"), ValueError,
     r"kzoo.export.tflite: model .* is not built"),
    ("export: base_dir under a file",
     lambda w: kzoo.export.saved_model(w.model, os.path.join(w.a_file, "m")), OSError,
     r"kzoo.export.saved_model: cannot write into .*a_file/m.*is a file, not a directory"),
    ("export: version 0", lambda w: kzoo.export.saved_model(w.model, w.base_dir, version=0),
     ValueError, r"`version` must be a positive integer or None, got 0"),
    ("export: existing version", lambda w: kzoo.export.saved_model(w.model, w.base_dir, 1),
     FileExistsError, r"version directory .*/1' already exists; pass overwrite=True"),
    ("export: tflite path is a directory", lambda w: kzoo.export.tflite(w.model, w.tmp),
     IsADirectoryError, r"is a directory; give a file path"),
    ("export: unknown quantization",
     lambda w: kzoo.export.tflite(w.model, w.tmp / "q.tflite", quantize="int4"), ValueError,
     r"`quantize` must be one of"),
    ("export: int8 without calibration data",
     lambda w: kzoo.export.tflite(w.model, w.tmp / "q.tflite", quantize="int8"), ValueError,
     r"quantize='int8' calibrates activation ranges and needs `representative_data`"),
    ("verify: truncated .tflite",
     lambda w: kzoo.export.verify(w.model, w.tmp / "truncated.tflite", IDS), ValueError,
     r"truncated.tflite' is not a readable TFLite file"),
    ("verify: empty .tflite",
     lambda w: kzoo.export.verify(w.model, w.tmp / "empty.tflite", IDS), ValueError,
     r"empty.tflite' is not a readable TFLite file"),
    ("verify: SavedModel directory without a version",
     lambda w: kzoo.export.verify(w.model, w.tmp / "no_version", IDS), FileNotFoundError,
     r"no_version' holds no SavedModel \(no saved_model.pb, no version directory\)"),
    ("verify: missing path",
     lambda w: kzoo.export.verify(w.model, w.tmp / "missing", IDS), FileNotFoundError,
     r"kzoo.export.verify: no artifact at .*missing'"),
    # -- loading a run ---------------------------------------------------------------------------
    ("run: corrupted .keras", lambda w: training.load_run_model(w.tmp / "corrupt_model"),
     ValueError, r"model.keras' is not a readable .keras model \(a truncated or corrupted"),
    ("run: truncated config.json", lambda w: training.read_run(w.tmp / "truncated_config"),
     ValueError, r"config.json' is not valid JSON"),
    ("run: missing directory", lambda w: training.read_run(w.tmp / "missing"),
     FileNotFoundError, r"no run directory"),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_raises_a_clear_error(world, case):
    _, call, error, message = case
    with pytest.raises(error, match=message):
        call(world)


# -- the command line --------------------------------------------------------------------------
# (id, argv(world), regex of the one line). Run in-process through kzoo.cli.main (what the
# console script calls); one case also goes through the installed script below.
CLI_CASES = [
    ("train: --out under a file",
     lambda w: ["train", "many_to_one_gru", "--dataset", "example", "--epochs", "1",
                "--option", "size=8", "--out", os.path.join(w.a_file, "run"), "--quiet"],
     r"kzoo train: error: \[Errno 20\] Not a directory: .*a_file/run"),
    ("train: bad config value",
     lambda w: ["train", "many_to_one_gru", "--dataset", "example", "--config", "units=-1"],
     r"kzoo train: error: many_to_one_gru: `units` must be a positive integer, got -1"),
    ("train: unknown config key",
     lambda w: ["train", "many_to_one_gru", "--dataset", "example", "--config", "unit=8"],
     r"kzoo train: error: many_to_one_gru: unknown --config key\(s\) \['unit'\]"),
    ("train: unknown dataset option",
     lambda w: ["train", "many_to_one_gru", "--dataset", "adding", "--option", "colour=1"],
     r"kzoo train: error: dataset 'adding': unknown option\(s\) \['colour'\]"),
    ("train: tbptt on a model without carried state",
     lambda w: ["train", "many_to_one_gru", "--dataset", "example", "--tbptt", "3"],
     r"kzoo train: error: --tbptt needs a model with a carried state"),
    ("train: zero batch size",
     lambda w: ["train", "many_to_one_gru", "--dataset", "example", "--batch-size", "0"],
     r"kzoo train: error: argument --batch-size: expected a positive integer, got '0'"),
    ("evaluate: corrupted model.keras", lambda w: ["evaluate", str(w.tmp / "corrupt_model")],
     r"kzoo evaluate: error: .*model.keras' is not a readable .keras model"),
    ("evaluate: truncated config.json",
     lambda w: ["evaluate", str(w.tmp / "truncated_config")],
     r"kzoo evaluate: error: .*config.json' is not valid JSON"),
    ("export: --out under a file",
     lambda w: ["export", w.run, "--out", os.path.join(w.a_file, "x"), "--format", "tflite"],
     r"kzoo export: error: .*(Not a directory|is a file, not a directory)"),
    ("export: missing run directory", lambda w: ["export", str(w.tmp / "missing")],
     r"kzoo export: error: no run directory"),
    ("predict: a run that is not seq2seq", lambda w: ["predict", w.run, "1 2 3"],
     r"kzoo predict: error: predict decodes seq2seq models; many_to_one_gru is not one"),
    ("predict: no text", lambda w: ["predict", w.run],
     r"kzoo predict: error: give the text to decode, or --input FILE"),
    ("info: unknown model", lambda w: ["info", "lstmm"],
     r"kzoo info: error: unknown model 'lstmm'"),
    ("list: no match", lambda w: ["list", "*nothing*"],
     r"kzoo list: error: no model matches '\*nothing\*'"),
    ("bench: unknown model", lambda w: ["bench", "many_to_one_lstmm"],
     r"kzoo bench: error: unknown model 'many_to_one_lstmm'; did you mean"),
    ("bench: zero steps", lambda w: ["bench", "--steps", "0"],
     r"kzoo bench: error: argument --steps: expected a positive integer, got '0'"),
]


@pytest.fixture
def no_process_wide_determinism(monkeypatch):
    # `kzoo train` switches op determinism on for its whole process; not for this one's tests.
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: None)


@pytest.mark.parametrize("case", CLI_CASES, ids=[case[0] for case in CLI_CASES])
def test_bad_command_line_exits_2_with_one_line(world, case, capfd,
                                               no_process_wide_determinism):
    _, argv, message = case
    try:
        code = cli.main(argv(world))
    except SystemExit as exit_:   # argparse
        code = exit_.code
    err = capfd.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("kzoo")
    assert re.search(message, lines[0]), lines[0]


def test_installed_command_reports_an_os_error_in_one_line(world):
    command = shutil.which("kzoo")
    assert command, "the `kzoo` entry point is not installed: run `pip install -e .`"
    argv = CLI_CASES[0][1](world)
    result = subprocess.run([command, *argv], capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items()
                                 if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Not a directory" in result.stderr


# -- inputs that are not errors: their documented behaviour ------------------------------------
def test_nan_and_inf_stay_in_their_row_and_padding_never_leaks():
    """A NaN at a valid step makes that row's outputs NaN from there on, an Inf saturates the
    gates or gives NaN, in that row only; NaN padding (a missing value after a row's length)
    changes nothing, gradients included."""
    layer = built_lstm(3, return_sequences=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    clean = np.asarray(layer(x, mask=mask))
    dirty = x.copy()
    dirty[0, 2, 1], dirty[1, 1, 0], dirty[2, 3:] = np.nan, np.inf, np.nan
    outputs = np.asarray(layer(dirty, mask=mask))
    assert np.all(np.isnan(outputs[0, 2:]))
    np.testing.assert_array_equal(outputs[0, :2], clean[0, :2])   # before the NaN
    np.testing.assert_array_equal(outputs[1, :1], clean[1, :1])   # before the Inf
    np.testing.assert_array_equal(outputs[2], clean[2])            # NaN only in its padding

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(dirty[2:], mask=mask[2:]))
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(np.all(np.isfinite(g)) for g in gradients)


def test_fully_masked_rows_return_the_initial_state():
    layer = built_lstm(3, return_sequences=True, return_state=True)
    mask = np.array([[False] * 5, [True] * 5])
    outputs, h, c = (np.asarray(t) for t in layer(X + 1, mask=mask))
    assert not outputs[0].any() and not h[0].any() and not c[0].any()
    assert outputs[1].any()


def test_a_batch_of_zero_gives_zero_outputs_everywhere(world):
    empty_ids = np.zeros((0, 4), np.int32)
    assert np.asarray(world.model(empty_ids)).shape == (0, 2)
    assert np.asarray(built_lstm(3)(np.zeros((0, 4, 3), np.float32))).shape == (0, 4)
    served = tf.saved_model.load(os.path.join(world.base_dir, "1"))
    assert served.signatures["serving_default"](inputs=tf.constant(empty_ids))[
        "outputs"].shape == (0, 2)


def test_float_token_ids_are_cast_to_integers_as_keras_does(world):
    ids = np.array([[1, 7, 3]])
    np.testing.assert_array_equal(world.model(ids.astype(np.float32)),
                                  world.model(ids.astype(np.int32)))
