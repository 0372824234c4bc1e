"""kzoo.export.verify: the report of differences, ops, sizes, latencies and metric change."""

import os

import numpy as np
import pytest

import kzoo.export


def test_report_of_saved_model_and_tflite(exported):
    model, saved, path = exported["many_to_many_lstm"]
    ids = np.random.default_rng(5).integers(1, 50, size=(4, 7)).astype(np.int32)
    ids[-1, 4:] = 0
    targets = np.argmax(model(ids).numpy(), -1)
    targets[0, :2] = (targets[0, :2] + 1) % 3   # Keras gets 2 of the 25 scored steps wrong
    report = kzoo.export.verify(model, [os.path.dirname(saved), path], (ids, targets))
    assert report.num_samples == 4 and report.metric_name == "accuracy"
    assert report.keras_metric == pytest.approx(23 / 25)
    saved_line, lite_line = report.artifacts
    assert saved_line.path == saved and saved_line.kind == "saved_model"  # the latest version
    assert saved_line.max_abs_diff < 1e-6 and lite_line.max_abs_diff < 1e-5
    assert lite_line.size_bytes == os.path.getsize(path)
    assert saved_line.size_bytes > 0 and saved_line.ops is None
    assert "WHILE" in lite_line.ops and "FULLY_CONNECTED" in lite_line.ops
    assert 0 < lite_line.weight_bytes < lite_line.size_bytes and saved_line.weight_bytes is None
    assert lite_line.metric_change == 0.0 and lite_line.latency_ms > 0
    text = str(report)
    assert text.splitlines()[0] == "many_to_many_lstm: 4 samples"
    for expected in ("artifact", "weights", "max |diff|", "latency ms", "accuracy", "change",
                     "keras", "many_to_many_lstm/1", "many_to_many_lstm.tflite", "ops: ", "WHILE"):
        assert expected in text


def test_seq2seq_report_counts_equal_tokens(exported):
    model, saved, path = exported["seq2seq_attention"]
    (source, target_in), target_out = kzoo.models.example_batch(
        "seq2seq_attention", {"source_vocab_size": 30, "target_vocab_size": 30}, batch_size=3)
    report = kzoo.export.verify(model, [saved, path], ((source, target_in), target_out))
    for line in report.artifacts:
        assert line.tokens_equal == 1.0 and line.max_abs_diff < 1e-4
        assert line.metric_change == 0.0
    assert "tokens equal" in str(report)


def test_padded_caption_steps_are_not_scored(exported):
    model, _, path = exported["one_to_many_gru"]
    rng = np.random.default_rng(2)
    features = rng.normal(size=(3, 6)).astype(np.float32)
    target_in = rng.integers(3, 50, size=(3, 5)).astype(np.int32)
    target_in[:, 0] = 1
    target_in[-1, 2:] = 0
    targets = np.argmax(model((features, target_in)).numpy(), -1)
    targets[-1, 2:] = (targets[-1, 2:] + 1) % 50   # wrong only where the caption is padding
    report = kzoo.export.verify(model, path, ((features, target_in), targets))
    assert report.keras_metric == 1.0 and report.artifacts[0].metric_change == 0.0


def test_verify_without_targets_and_missing_artifact(exported, tmp_path):
    model, _, path = exported["one_to_one_mlp"]
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    report = kzoo.export.verify(model, path, x)
    assert report.metric_name is None and report.artifacts[0].metric is None
    assert "accuracy" not in str(report)
    with pytest.raises(FileNotFoundError, match="no artifact"):
        kzoo.export.verify(model, tmp_path / "missing.tflite", x)
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        kzoo.export.verify(model, tmp_path, x)
