"""kzoo.export.tflite: builtins-only files with the seq2seq decode as WHILE loops, quantized
files, and clear errors that leave nothing behind."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import kzoo
import kzoo.export
from kzoo.export import lite

from .conftest import build_small, check_tflite


def _runner(path, signature="serving_default"):
    with open(path, "rb") as handle:
        return Interpreter(model_content=handle.read()).get_signature_runner(signature)


def _held_out_sources(count=20, vocab=30, seed=11):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=count)
    sources = np.zeros((count, lengths.max()), np.int32)
    for row, length in enumerate(lengths):
        sources[row, :length] = rng.integers(3, vocab, size=length)
    return sources


@pytest.fixture(scope="module")
def served_seq2seq(exported):
    """The exported seq2seq_attention SavedModel, loaded once for the tests that compare it."""
    return tf.saved_model.load(exported["seq2seq_attention"][1])


def test_seq2seq_decodes_like_generate_greedy_and_beam(exported, served_seq2seq):
    model, _, path = exported["seq2seq_attention"]
    sources = _held_out_sources()
    loaded = served_seq2seq.signatures
    for method, signature in (("greedy", "serving_default"), ("beam", "beam_search")):
        expected = model.generate(sources, method=method)
        lite_out = _runner(path, signature)(source_ids=sources,
                                            max_length=np.array(0, np.int32))
        served = loaded[signature](source_ids=tf.constant(sources), max_length=tf.constant(0))
        for out in (lite_out, served):
            np.testing.assert_array_equal(np.asarray(out["tokens"]), expected["tokens"])
            np.testing.assert_allclose(out["scores"], expected["scores"], atol=1e-4)
        if method == "beam":
            np.testing.assert_array_equal(lite_out["beam_tokens"], expected["beam_tokens"])
        else:
            np.testing.assert_allclose(lite_out["attention"], expected["attention"], atol=1e-5)
    with open(path, "rb") as handle:
        ops = lite.op_names(handle.read())
    assert "WHILE" in ops and not any("Flex" in op for op in ops)


def test_seq2seq_sample_signature_draws_what_generate_draws(exported, served_seq2seq):
    # One seed, the same tokens in Keras, the SavedModel and the builtins-only LiteRT file:
    # the draws are counter-based integer arithmetic, not TensorFlow random ops.
    model, _, path = exported["seq2seq_attention"]
    sources = _held_out_sources(count=6)
    loaded = served_seq2seq.signatures["sample"]
    runner = _runner(path, "sample")
    for kwargs in ({"seed": 3}, {"seed": 4, "temperature": 0.7, "top_k": 3, "top_p": 0.8}):
        expected = model.generate(sources, method="sample", **kwargs)
        inputs = {"temperature": np.float32(kwargs.get("temperature", 1.0)),
                  "top_k": np.int32(kwargs.get("top_k", 0)),
                  "top_p": np.float32(kwargs.get("top_p", 1.0)),
                  "seed": np.int32(kwargs["seed"])}
        lite_out = runner(source_ids=sources, max_length=np.array(0, np.int32),
                          **{k: np.array(v) for k, v in inputs.items()})
        served = loaded(source_ids=tf.constant(sources), max_length=tf.constant(0),
                        **{k: tf.constant(v) for k, v in inputs.items()})
        for out in (lite_out, served):
            np.testing.assert_array_equal(np.asarray(out["tokens"]), expected["tokens"])
            np.testing.assert_allclose(out["scores"], expected["scores"], atol=1e-4)
    greedy = model.generate(sources)["tokens"]
    cold = runner(source_ids=sources, max_length=np.array(0, np.int32),
                  temperature=np.array(0.0, np.float32), top_k=np.array(0, np.int32),
                  top_p=np.array(1.0, np.float32), seed=np.array(0, np.int32))
    np.testing.assert_array_equal(cold["tokens"], greedy)   # temperature <= 0: greedy


def test_seq2seq_encode_and_decode_step_signatures(exported):
    model, _, path = exported["seq2seq_attention"]
    sources = _held_out_sources(count=3)
    encoded = _runner(path, "encode")(source_ids=sources)
    memory, keys, memory_mask, states = model.encode(sources)
    np.testing.assert_allclose(encoded["memory"], memory, atol=1e-5)
    np.testing.assert_array_equal(encoded["memory_mask"], memory_mask)
    token_ids = np.full([3], model.start_id, np.int32)
    step = _runner(path, "decode_step")(
        token_ids=token_ids, memory=encoded["memory"], keys=encoded["keys"],
        memory_mask=encoded["memory_mask"],
        **{k: v for k, v in encoded.items() if k.startswith("state_")})
    logits, new_states, alignments = model.decode_step(token_ids, states, memory, keys,
                                                       memory_mask)
    np.testing.assert_allclose(step["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(step["alignment"], alignments, atol=1e-5)
    np.testing.assert_allclose(step["state_0"], new_states[0], atol=1e-5)


@pytest.fixture(scope="module")
def wide_model_files(tmp_path_factory):
    """A model whose weights dominate its file: float, dynamic and float16 files."""
    keras.utils.set_random_seed(4)
    model = kzoo.build("many_to_one_lstm", vocab_size=8000, embedding_dim=64, units=64)
    directory = tmp_path_factory.mktemp("wide")
    files = {mode: kzoo.export.tflite(model, directory / f"{mode}.tflite", quantize=mode)
             for mode in (None, "dynamic", "float16")}
    return model, files


def test_dynamic_quantization_is_3x_smaller_and_measured(wide_model_files):
    model, files = wide_model_files
    sizes = {mode: os.path.getsize(path) for mode, path in files.items()}
    assert sizes[None] >= 3 * sizes["dynamic"], sizes
    assert sizes[None] >= 1.8 * sizes["float16"], sizes
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 8000, size=(16, 12)).astype(np.int32)
    targets = np.argmax(model(ids).numpy(), -1)  # Keras is right by construction
    report = kzoo.export.verify(model, list(files.values()), (ids, targets))
    assert report.metric_name == "accuracy" and report.keras_metric == 1.0
    dynamic = report[files["dynamic"]]
    assert dynamic.size_bytes == sizes["dynamic"]
    assert 0 < dynamic.max_abs_diff < 0.05
    assert dynamic.metric_change == dynamic.metric - 1.0
    assert "DEQUANTIZE" in report[files["float16"]].ops or \
        report[files["float16"]].max_abs_diff > 0
    assert report[files[None]].max_abs_diff < 1e-5


# The bar for every registered model at its default size. The ConvLSTM's is the closest:
# its 41k weights are 160 KB in float and 42 KB in int8 plus 3 KB of per-channel scales and zero
# points, so a graph of G KB makes the ratio (160 + G) / (45 + G), 3x only for a graph under
# 12.5 KB. Its graph took 12.0 KB (3.02x) with serving_default and stream; the with_lengths
# signature (the variable-length form, its own signature since serving_default takes exactly the
# Keras inputs) adds its masked loop, and the file is 2.88x: a known gap, held by a strict xfail so
# that the test says when a smaller graph closes it.
DYNAMIC_BAR = 3.0
BELOW_BAR = {"many_to_many_convlstm": "the with_lengths signature's masked loop takes its graph "
                                      "past 12.5 KB (2.88x)"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=BELOW_BAR[name]))
    if name in BELOW_BAR else name for name in kzoo.list_models()])
def test_default_size_float_file_equals_keras_and_dynamic_is_3x_smaller(name, tmp_path):
    """Every registered model at ``kzoo.build(name)``'s sizes: its float file is builtins-only
    and equals Keras (``check_tflite``), and its dynamic file is 3x smaller."""
    keras.utils.set_random_seed(0)
    model = kzoo.build(name)
    files = kzoo.export.tflite_files(model, {None: tmp_path / "float.tflite",
                                             "dynamic": tmp_path / "dynamic.tflite"})
    check_tflite({name: (model, None, files[None])})
    sizes = {mode: os.path.getsize(path) for mode, path in files.items()}
    assert sizes[None] >= DYNAMIC_BAR * sizes["dynamic"], \
        f"{name}: float {sizes[None]} B, dynamic {sizes['dynamic']} B " \
        f"({sizes[None] / sizes['dynamic']:.2f}x)"


def _subgraphs(content):
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(content)).subgraphs


def test_compact_merges_the_loops_of_both_signatures_and_computes_the_same(monkeypatch):
    """The converter's own file (the pass switched off) against the file the export writes."""
    from kzoo.export import compact
    from kzoo.export.signatures import served_model, signatures

    model = build_small("many_to_many_lstm")
    served = served_model(model)
    functions = {s.name: (s.named_fn(), s.specs) for s in signatures(served, text=False)}
    with monkeypatch.context() as patch:
        patch.setattr(compact, "compact", lambda content: content)
        raw = lite.convert_signatures(functions, quantize="dynamic",
                                      variables=served.variables)
    small = compact.compact(raw)
    assert len(_subgraphs(small)) < len(_subgraphs(raw)) and len(small) < 0.9 * len(raw)
    assert compact.compact(small) == small        # nothing left to merge
    rng = np.random.default_rng(2)
    ids = rng.integers(1, 50, size=(3, 7)).astype(np.int32)
    states = [rng.standard_normal((3, 8)).astype(np.float32) for _ in range(2)]
    for signature, feed in (("serving_default", {"inputs": ids}),
                            ("stream", {"inputs": ids, "initial_state_1_0": states[0],
                                        "initial_state_1_1": states[1]})):
        before = Interpreter(model_content=raw).get_signature_runner(signature)(**feed)
        after = Interpreter(model_content=small).get_signature_runner(signature)(**feed)
        assert before.keys() == after.keys()
        for name in before:
            np.testing.assert_array_equal(after[name], before[name])


def test_internal_names_are_stripped_and_signatures_kept(wide_model_files):
    _, files = wide_model_files
    from ai_edge_litert.tools import flatbuffer_utils

    with open(files[None], "rb") as handle:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(handle.read()))
    entries = {s.subgraphIndex for s in model.signatureDefs}
    assert {s.signatureKey.decode() for s in model.signatureDefs} == {"serving_default",
                                                                       "stream"}
    loops = [g for k, g in enumerate(model.subgraphs) if k not in entries]
    assert loops and all(g.name is None and all(t.name is None for t in g.tensors)
                         for g in loops)
    # A float file quantizes nothing: no tensor keeps the converter's empty quantization table.
    assert all(t.quantization is None for g in model.subgraphs for t in g.tensors)
    interpreter = Interpreter(model_path=str(files[None]))
    assert interpreter.get_signature_list()["stream"]["inputs"] == [
        "initial_state_1_0", "initial_state_1_1", "inputs"]
    assert interpreter.get_input_details()[0]["name"]


def test_float16_file_runs_close_to_keras(wide_model_files):
    model, files = wide_model_files
    ids = np.random.default_rng(1).integers(1, 8000, size=(2, 7)).astype(np.int32)
    out = _runner(files["float16"])(inputs=ids)["outputs"]
    np.testing.assert_allclose(out, model(ids), atol=1e-2)


@pytest.mark.slow
def test_int8_calibrates_on_representative_data(tmp_path):
    model = build_small("many_to_one_gru")
    rng = np.random.default_rng(0)
    data = [rng.integers(1, 50, size=(2, 6)).astype(np.int32) for _ in range(4)]
    path = kzoo.export.tflite(model, tmp_path / "int8.tflite", quantize="int8",
                              representative_data=data)
    out = _runner(path)(inputs=data[0])["outputs"]
    np.testing.assert_allclose(out, model(data[0]), atol=0.1)


def test_int8_export_drops_the_calibrators_interpreter_deprecation_warning(tmp_path):
    """TensorFlow's int8 calibrator runs the deprecated ``tf.lite.Interpreter``, whose warning a
    kzoo user cannot act on: kzoo's call drops it, leaves the caller's warning filters as they
    were, and shows it when verbose."""
    import warnings

    from kzoo import quiet

    model = build_small("one_to_one_mlp")
    data = [np.random.default_rng(0).normal(size=(2, *model.inputs[0].shape[1:]))
            .astype(np.float32)]

    def export_warnings(name):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filters = list(warnings.filters)
            kzoo.export.tflite(model, tmp_path / name, quantize="int8", representative_data=data)
            assert warnings.filters == filters
        return [str(w.message) for w in caught if "tf.lite.Interpreter" in str(w.message)]

    assert export_warnings("quiet.tflite") == []
    quiet.set_verbose(True)
    try:
        shown = export_warnings("verbose.tflite")
    finally:
        quiet.set_verbose(False)
    assert shown and "tf.lite.Interpreter is deprecated" in shown[0]


def test_tflite_files_writes_what_tflite_writes_from_one_trace(tmp_path, monkeypatch):
    model = build_small("one_to_one_mlp")
    one_by_one = {mode: kzoo.export.tflite(model, tmp_path / f"{mode}.tflite", quantize=mode)
                  for mode in (None, "dynamic")}
    traces = []
    freeze = lite.freeze_signature
    monkeypatch.setattr(lite, "freeze_signature", lambda *a: traces.append(1) or freeze(*a))
    files = kzoo.export.tflite_files(model, {None: tmp_path / "both" / "f.tflite",
                                             "dynamic": tmp_path / "both" / "d.tflite"})
    assert len(traces) == 1     # serving_default, once for both files
    for mode, path in files.items():
        assert os.path.isabs(path)
        with open(path, "rb") as shared, open(one_by_one[mode], "rb") as alone:
            assert shared.read() == alone.read(), mode


def test_tflite_files_bad_arguments_leave_nothing(tmp_path):
    model = build_small("one_to_one_mlp")
    with pytest.raises(ValueError, match="non-empty dict"):
        kzoo.export.tflite_files(model, {})
    with pytest.raises(ValueError, match="same file"):
        kzoo.export.tflite_files(model, {None: tmp_path / "m.tflite",
                                         "dynamic": str(tmp_path / "m.tflite")})
    with pytest.raises(ValueError, match="quantize.*one of"):
        kzoo.export.tflite_files(model, {None: tmp_path / "m.tflite", "int4": tmp_path / "q"})
    with pytest.raises(ValueError, match="representative_data"):
        kzoo.export.tflite_files(model, {"int8": tmp_path / "sub" / "m.tflite"})
    assert os.listdir(tmp_path) == []


def test_bad_quantize_arguments(tmp_path):
    model = build_small("one_to_one_mlp")
    with pytest.raises(ValueError, match="quantize.*one of"):
        kzoo.export.tflite(model, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(ValueError, match="representative_data"):
        kzoo.export.tflite(model, tmp_path / "m.tflite", quantize="int8")
    assert os.listdir(tmp_path) == []


def test_real_valued_sequence_model_serves_its_keras_inputs_and_lengths_apart(tmp_path):
    """serving_default takes exactly the Keras inputs (a LiteRT caller who sets only those gets
    Keras' outputs, not ones computed from an unset ``lengths``); ``with_lengths`` masks each
    row at its length, as the row alone cut to that length."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 3), name="inputs")
    x = kzoo.layers.LSTM(8, return_sequences=True)(inputs)
    x = kzoo.layers.GRU(8, return_sequences=True)(x)
    model = keras.Model(inputs, kzoo.layers.SimpleRNN(4)(x))
    interpreter = Interpreter(model_path=kzoo.export.tflite(model, tmp_path / "stack.tflite"))
    signatures = interpreter.get_signature_list()
    assert signatures["serving_default"]["inputs"] == ["inputs"]
    assert signatures["with_lengths"]["inputs"] == ["inputs", "lengths"]
    default = interpreter.get_signature_runner("serving_default")
    with_lengths = interpreter.get_signature_runner("with_lengths")
    rng = np.random.default_rng(1)
    for batch, time in ((1, 4), (3, 9)):
        sequences = rng.normal(size=(batch, time, 3)).astype(np.float32)
        np.testing.assert_allclose(default(inputs=sequences)["outputs"], model(sequences),
                                   atol=1e-5)
        lengths = np.arange(time - batch + 1, time + 1, dtype=np.int32)
        padded = sequences.copy()
        for row, length in enumerate(lengths):
            padded[row, length:] = 99.0
        alone = np.concatenate([model(sequences[row:row + 1, :length])
                                for row, length in enumerate(lengths)])
        np.testing.assert_allclose(with_lengths(inputs=padded, lengths=lengths)["outputs"],
                                   alone, atol=1e-5)


def test_flex_op_is_named_and_allow_flex_accepts_it(tmp_path):
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.LSTM(4)(inputs))  # Keras' own LSTM: TensorList
    with pytest.raises(lite.FlexOpsNeeded, match="TensorList") as caught:
        kzoo.export.tflite(model, tmp_path / "keras_lstm.tflite")
    assert "allow_flex=True" in str(caught.value)
    assert os.listdir(tmp_path) == []
    path = kzoo.export.tflite(model, tmp_path / "keras_lstm.tflite", allow_flex=True)
    assert b"Flex" in open(path, "rb").read()


def test_unbuilt_model_and_unwritable_path(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        kzoo.export.tflite(keras.Sequential([kzoo.layers.GRU(3)]), tmp_path / "u.tflite")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write into"):
        kzoo.export.tflite(build_small("one_to_one_mlp"), blocker / "sub" / "m.tflite")
    assert os.listdir(tmp_path) == ["a_file"]


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    model = build_small("one_to_one_mlp")
    real_rename = os.rename

    def fail_rename(source, target):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "rename", fail_rename)
    with pytest.raises(OSError, match="Input/output"):
        kzoo.export.tflite(model, tmp_path / "new_dir" / "m.tflite")
    monkeypatch.setattr(os, "rename", real_rename)
    assert os.listdir(tmp_path) == []
