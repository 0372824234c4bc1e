"""The string signature: a translator trained on ``number_words`` carries the dataset's
vocabularies, and its SavedModel, reloaded in a fresh process without kzoo, translates held-out
English number words through ``translate``, called directly and through a TF Serving
PredictRequest of strings, exactly as ``kzoo predict`` does.

The default run trains and exports in this process through the functions behind ``kzoo train``
and ``kzoo export``; the slow check runs the installed commands themselves.
"""

import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.export
from kzoo import training
from kzoo.export.signatures import signatures
from kzoo.datasets.number_words.number_words_dataset_builder import split_numbers
from kzoo.layers.text import TokenVectorizer
from kzoo.models.seq2seq import UnknownTokensWarning, default_decode_length

from ..conftest import kzoo_command
from .conftest import serve_in_fresh_process

MAX_NUMBER = 200
SMALL = {"units": 16, "source_embedding_dim": 8, "target_embedding_dim": 8}
TRAINING = {"epochs": 12, "batch_size": 16, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    """A run of seq2seq_attention trained on number_words (English words -> German characters)
    and exported as a SavedModel, in this process: ``run_dir``."""
    tmp = tmp_path_factory.mktemp("translator")
    run = training.train("seq2seq_attention", "number_words", out=tmp / "run",
                         model_config=SMALL, dataset_options={"max_number": MAX_NUMBER},
                         data_dir=str(tmp / "data"), verbose=0, plots=False,
                         deterministic=False, **TRAINING)
    training.export_run(run.directory, formats=("saved_model",), samples=8,
                        data_dir=str(tmp / "data"))
    return run.directory


def _held_out_words():
    from num2words import num2words

    return [num2words(int(n), lang="en") for n in split_numbers(MAX_NUMBER)["test"]]


def check_translates_like_predict(run_dir, texts, predicted, directory):
    """The exported ``translate`` signature, served in a fresh process, gives ``predicted`` (kzoo
    predict's strings) and ``model.generate``'s tokens on kzoo predict's ids."""
    saved = str(run_dir / "export" / "saved_model" / "1")
    feed = {"text": np.array([t.encode() for t in texts]), "max_length": np.array(0, np.int32)}
    served = serve_in_fresh_process({"translator": (saved, feed, "translate")},
                                    directory)["translator"]
    assert list(served["spec"]["text"]) == ["string", "-1"]
    assert list(served["spec"]["max_length"]) == ["int32"]
    for route in ("direct", "predict_request"):
        translations = [t.decode() for t in served[route]["translation"]]
        assert translations == predicted, route
    # The model learned something: German-looking words, not one repeated guess.
    assert len(set(predicted)) > len(texts) // 2

    model = training.load_run_model(run_dir)
    vocabularies = training.read_vocabularies(run_dir)
    assert model.vocabularies["source"]["tokens"] == vocabularies["source"]
    assert model.vocabularies["target"] == {"tokens": vocabularies["target"], "level": "char",
                                            "standardize": None}
    source = TokenVectorizer(vocabularies["source"], level="word")(tf.constant(texts))
    expected = model.generate(source)
    # Held-out words may be unknown: counted, and as long as the longest known word.
    known = set(vocabularies["source"][4:])
    longest = max(map(len, known))
    np.testing.assert_array_equal(served["direct"]["unknown_tokens"],
                                  [sum(w not in known for w in t.split()) for t in texts])
    characters = max(sum(len(w) if w in known else longest for w in t.split()) + t.count(" ")
                     for t in texts)
    assert served["direct"]["tokens"].shape[1] == default_decode_length(characters)
    np.testing.assert_array_equal(served["direct"]["tokens"], expected["tokens"])
    np.testing.assert_array_equal(served["direct"]["lengths"], expected["lengths"])
    np.testing.assert_allclose(served["direct"]["attention"], expected["attention"], atol=1e-5)
    assert model.translate(texts) == predicted


# Some held-out numbers hold words no training number has (checked: unknown_tokens).
@pytest.mark.filterwarnings("ignore::kzoo.models.seq2seq.UnknownTokensWarning")
def test_exported_run_translates_strings_like_kzoo_predict(translator, tmp_path):
    texts = _held_out_words()
    assert len(texts) == MAX_NUMBER // 10
    check_translates_like_predict(translator, texts, training.predict(translator, texts),
                                  str(tmp_path))


def _kzoo(*args):
    result = subprocess.run([kzoo_command(), *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::kzoo.models.seq2seq.UnknownTokensWarning")
def test_kzoo_train_export_predict_chain_serves_strings(tmp_path):
    data_dir, run_dir = tmp_path / "data", tmp_path / "run"
    config = [a for key, value in SMALL.items() for a in ("--config", f"{key}={value}")]
    _kzoo("train", "seq2seq_attention", "--dataset", "number_words", "--option",
          f"max_number={MAX_NUMBER}", "--data-dir", data_dir, "--epochs", TRAINING["epochs"],
          "--batch-size", TRAINING["batch_size"], "--lr", TRAINING["learning_rate"], *config,
          "--quiet", "--out", run_dir)
    _kzoo("export", run_dir, "--format", "saved_model", "--samples", 8, "--data-dir", data_dir)
    texts = _held_out_words()
    predicted = [line.split(" -> ", 1)[1] for line in
                 _kzoo("predict", run_dir, *texts).splitlines()]
    check_translates_like_predict(run_dir, texts, predicted, str(tmp_path))


def test_translate_signature_tokenizes_unknown_words_and_empty_text(translator):
    run_dir = translator
    loaded = tf.saved_model.load(str(run_dir / "export" / "saved_model" / "1"))
    translate = loaded.signatures["translate"]
    model = training.load_run_model(run_dir)
    texts = ["twenty-three", "zwanzig three", "", "seven"]
    out = translate(text=tf.constant(texts), max_length=tf.constant(12))
    assert out["tokens"].shape == (4, 12) and out["translation"].dtype == tf.string
    with pytest.warns(UnknownTokensWarning, match="'zwanzig' in 'zwanzig three'"):
        translations = model.translate(texts, max_length=12)
    assert [t.decode() for t in out["translation"].numpy()] == translations
    # Only empty strings: one padding step is encoded (no zero-width batch), 0 characters.
    empty = translate(text=tf.constant(["", ""]), max_length=tf.constant(0))
    assert empty["tokens"].shape == (2, default_decode_length(0))


def test_only_the_saved_model_gets_the_string_signature():
    model = kzoo.build("seq2seq_rnn", units=4, source_embedding_dim=4, target_embedding_dim=4,
                       source_vocab_size=6, target_vocab_size=7,
                       vocabularies={"source": TokenVectorizer(["one", "two"]),
                                     "target": TokenVectorizer(list("abc"), level="char")})
    assert [s.name for s in signatures(model)][-1] == "translate"
    assert "translate" not in [s.name for s in signatures(model, text=False)]
    assert "translate" not in [s.name for s in signatures(kzoo.build("seq2seq_rnn", units=4))]


@pytest.mark.slow
def test_tflite_leaves_the_string_signature_out(tmp_path):
    """String ops are not TFLite builtins: the file holds the five id signatures, and its
    default decode length is the model's (counted in characters for words to characters)."""
    from ai_edge_litert.interpreter import Interpreter

    model = kzoo.build("seq2seq_rnn", units=4, source_embedding_dim=4, target_embedding_dim=4,
                       source_vocab_size=7, target_vocab_size=7,
                       vocabularies={"source": TokenVectorizer(["one", "two", "three"]),
                                     "target": TokenVectorizer(list("abc"), level="char")})
    path = kzoo.export.tflite(model, tmp_path / "translator.tflite")
    with open(path, "rb") as handle:
        interpreter = Interpreter(model_content=handle.read())
    assert set(interpreter.get_signature_list()) == {"serving_default", "sample",
                                                     "beam_search", "encode", "decode_step"}
    source_ids = np.array([[6, 4], [5, 0]], np.int32)                # "three one", "two"
    out = interpreter.get_signature_runner("serving_default")(
        source_ids=source_ids, max_length=np.array(0, np.int32))
    assert out["tokens"].shape == (2, default_decode_length(len("three one")))
    np.testing.assert_array_equal(out["tokens"], model.generate(source_ids)["tokens"])


def test_detokenize_stops_at_end_or_padding():
    words = TokenVectorizer(["one", "two"], level="word")
    chars = TokenVectorizer(list("ab"), level="char")
    ids = [[4, 5, 3, 1, 2, 4], [0, 4, 2, 0, 0, 0], [5, 5, 5, 5, 5, 5]]
    assert words.detokenize(ids).numpy().tolist() == [b"one two [UNK] <start>", b"",
                                                      b"two two two two two two"]
    assert chars.detokenize(ids, end_id=3).numpy().tolist() == [b"ab", b"", b"bbbbbb"]
    with pytest.raises(ValueError, match="batch, time"):
        words.detokenize([4, 5])


def test_vocabularies_are_checked_and_saved(tmp_path):
    source = TokenVectorizer(["one", "two"])
    target = TokenVectorizer(list("abc"), level="char")
    small = dict(units=4, source_embedding_dim=4, target_embedding_dim=4)
    model = kzoo.build("seq2seq_lstm", source_vocab_size=6, target_vocab_size=7,
                       vocabularies={"source": source, "target": target}, **small)
    assert model.get_config()["vocabularies"]["target"] == {
        "tokens": ["", "<start>", "<end>", "[UNK]", "a", "b", "c"], "level": "char",
        "standardize": None}
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    with pytest.warns(UnknownTokensWarning, match="'three' in 'three'"):
        assert loaded.translate(["one two", "three"]) == model.translate(["one two", "three"])
    bad = [({"source": source}, "keys 'source' and 'target'"),
           ({"source": source, "target": TokenVectorizer(list("ab"))},
            "has 6 tokens.*target_vocab_size=7"),
           ({"source": {"tokens": ["x"], "level": "subword"}, "target": target}, "level"),
           ({"source": {"words": ["x"]}, "target": target}, "'tokens'"),
           ({"source": {"tokens": "one two"}, "target": target}, "list of strings")]
    for vocabularies, message in bad:
        with pytest.raises(ValueError, match=message):
            kzoo.build("seq2seq_lstm", source_vocab_size=6, target_vocab_size=7,
                       vocabularies=vocabularies, **small)
    plain = kzoo.build("seq2seq_lstm", **small)
    with pytest.raises(ValueError, match="carries no vocabularies"):
        plain.translate("one")


def test_a_failed_overwrite_keeps_the_previous_tflite_file(translator, tmp_path, monkeypatch):
    """``kzoo export --overwrite`` (``export_run(overwrite=True)``) replaces files only once the
    new ones are written: a conversion that fails leaves the earlier file as it was."""
    from kzoo.export import lite

    out = tmp_path / "export"
    out.mkdir()
    earlier = b"an earlier export"
    (out / "model.tflite").write_bytes(earlier)
    with pytest.raises(ValueError, match="exists"):
        training.export_run(translator, formats=("tflite",), out=out, samples=4)

    def broken(*args, **kwargs):
        raise RuntimeError("converter failed")

    monkeypatch.setattr(lite, "convert_variants", broken)
    with pytest.raises(RuntimeError, match="converter failed"):
        training.export_run(translator, formats=("tflite",), out=out, samples=4,
                            overwrite=True)
    assert (out / "model.tflite").read_bytes() == earlier
    assert [p.name for p in out.iterdir()] == ["model.tflite"]


def test_unknown_tokens_are_counted_by_the_signature_and_named_by_translate(translator):
    texts = ["banana seven", "seven", "banana apple pie"]
    loaded = tf.saved_model.load(str(translator / "export" / "saved_model" / "1"))
    out = loaded.signatures["translate"](text=tf.constant(texts), max_length=tf.constant(0))
    assert out["unknown_tokens"].numpy().tolist() == [1, 0, 3]
    model = training.load_run_model(translator)
    with pytest.warns(UnknownTokensWarning) as caught:
        translations = model.translate(texts)
    assert translations == [t.decode() for t in out["translation"].numpy()]
    assert len(caught) == 1 and str(caught[0].message).endswith(
        "'banana' in 'banana seven'; 'banana', 'apple', 'pie' in 'banana apple pie'")


def test_kzoo_predict_warns_on_stderr_and_plots_the_best_beam(translator, tmp_path):
    png = tmp_path / "beam.png"
    result = subprocess.run([kzoo_command(), "predict", str(translator), "banana", "seven",
                             "--beam", "3", "--plot", str(png)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert [line.split(" -> ")[0] for line in result.stdout.splitlines()] == ["banana", "seven"]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kzoo predict: warning: ") and \
        lines[0].endswith("'banana' in 'banana'"), result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_plots_the_attention_of_the_best_beam(translator, tmp_path, monkeypatch):
    from kzoo import diagnostics

    drawn = []
    monkeypatch.setattr(diagnostics, "plot_attention",
                        lambda attention, source, target, path, **kwargs:
                        drawn.append((attention, source, target)))
    texts = ["twenty-three", "seven"]
    outputs = training.predict(translator, texts, method="beam", beam_width=3,
                               attention_plot=tmp_path / "beam.png")
    model = training.load_run_model(translator)
    expected = model.generate(model.text_to_ids(texts), method="beam", beam_width=3)
    assert model.ids_to_text(expected["tokens"]) == outputs
    attention, source, target = drawn[0]
    assert source == ["twenty-three"] and target == [*outputs[0], "<end>"]
    np.testing.assert_allclose(attention, expected["attention"][0], atol=1e-6)
    # Each emitted character's alignment sums to 1 over the one source word.
    np.testing.assert_allclose(attention[:len(target)].sum(-1), 1.0, atol=1e-5)


def test_an_overly_long_text_is_refused_in_python_and_by_the_signature(translator):
    text = " ".join(["seven"] * 1200)  # 7199 characters: over MAX_SOURCE_UNITS (4999)
    model = training.load_run_model(translator)
    with pytest.raises(ValueError, match="too long: at most 4999 characters"):
        model.translate(text)
    with pytest.raises(ValueError, match="too long: at most 4999 characters"):
        training.predict(translator, [text])
    loaded = tf.saved_model.load(str(translator / "export" / "saved_model" / "1"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="too long: at most 4999"):
        loaded.signatures["translate"](text=tf.constant([text]), max_length=tf.constant(20))


def test_sample_request_sends_vocabulary_tokens_and_the_default_length(translator):
    import json

    body = json.loads((translator / "export" / "saved_model" / "sample_request.json").read_text())
    model = training.load_run_model(translator)
    source = np.array(body["inputs"]["source_ids"])
    tokens = model.vocabularies["source"]["tokens"]
    texts = [" ".join(tokens[i] for i in row if i) for row in source]
    assert (source[:, 0] >= 4).all() and all(texts)
    np.testing.assert_array_equal(model.text_to_ids(texts), source)
    assert body["inputs"]["max_length"] == default_decode_length(max(map(len, texts)))
    # Without vocabularies: ids that are not padding, start, end or unknown.
    from kzoo.export import serving

    plain = kzoo.build("seq2seq_rnn", units=4, source_embedding_dim=4, target_embedding_dim=4,
                       source_vocab_size=9, target_vocab_size=7)
    body = serving.sample_request(signatures(plain)[0], batch_size=2, time=6)
    source = np.array(body["inputs"]["source_ids"])
    assert source.shape == (2, 6) and (source[0] >= 4).all() and (source[1, :3] >= 4).all()
    assert (source[1, 3:] == 0).all() and body["inputs"]["max_length"] == 2 * 6 + 2
