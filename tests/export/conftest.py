"""Shared fixtures of the export tests: small models of every pattern, exported once per session.

``exported`` holds one model per I/O pattern (the fast default-run subset); the slow test of
every registered model builds its own with the same helpers.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import kzoo
import kzoo.export
from kzoo.models import model_info

# One model per pattern; many_to_many_lstm streams, seq2seq_attention decodes with attention.
FAST_MODELS = ("one_to_one_mlp", "one_to_many_gru", "many_to_one_bi_gru", "many_to_many_lstm",
               "seq2seq_attention")

_SMALL = dict(vocab_size=50, embedding_dim=8, units=8, input_dim=6, num_classes=3,
              feature_dim=6, source_vocab_size=30, target_vocab_size=30,
              source_embedding_dim=8, target_embedding_dim=8, rows=4, cols=4, channels=2,
              filters=3)


def small_config(name):
    """Small overrides (units=8 ...) for ``name``, only keys its builder takes."""
    defaults = model_info(name).default_config
    config = {k: v for k, v in _SMALL.items() if k in defaults}
    if name.startswith(("many_to_one", "many_to_many")) and name != "many_to_many_convlstm":
        config.pop("input_dim", None)  # token ids: exercises the padding contract
    return config


def build_small(name, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return kzoo.build(name, **small_config(name))


def export_models(names, directory, formats=("saved_model", "tflite")):
    """Build each model small, write its SavedModel and float TFLite file (those of ``formats``);
    returns ``{name: (model, saved_model_dir, tflite_path)}``, None for a format not written."""
    unknown = sorted(set(formats) - {"saved_model", "tflite"})
    if unknown:
        raise ValueError(f"export_models: unknown format(s) {unknown}")
    result = {}
    for name in names:
        model = build_small(name)
        saved = kzoo.export.saved_model(model, os.path.join(directory, name)) \
            if "saved_model" in formats else None
        lite_path = kzoo.export.tflite(model, os.path.join(directory, f"{name}.tflite")) \
            if "tflite" in formats else None
        result[name] = (model, saved, lite_path)
    return result


def sample_feed(model, batch_size=3, time=6, seed=0):
    """``{input name: array}`` for serving_default, token ids with the last row padded."""
    from kzoo.export.serving import sample_inputs
    from kzoo.export.signatures import signatures

    signature = signatures(model)[0]
    feed = sample_inputs(signature, batch_size=batch_size, time=time, seed=seed)
    rng = np.random.default_rng(seed)
    for spec in signature.specs:
        name = spec.name
        if spec.dtype.is_integer and spec.shape.rank == 2:
            high = 30 if name in ("source_ids", "target_in_ids") else 50
            if name == "teacher_outputs":
                high = 3
            feed[name] = rng.integers(1, high, size=feed[name].shape).astype(np.int32)
            if name != "teacher_outputs":
                feed[name][-1, time // 2:] = 0
        if name == "max_length":
            feed[name] = np.array(0, np.int32)
    return feed


def keras_reference(model, feed):
    """What serving_default must return, computed by Keras: model(...) or model.generate."""
    from kzoo.export.signatures import is_seq2seq, signatures

    if is_seq2seq(model):
        max_length = int(feed.get("max_length", 0))
        out = model.generate(feed["source_ids"], max_length=max_length if max_length > 0 else None)
        return {k: np.asarray(out[k]) for k in ("tokens", "scores", "lengths", "attention")
                if k in out}
    names = [s.name for s in signatures(model)[0].specs if s.name != "lengths"]
    arrays = [feed[n] for n in names]
    return {"outputs": np.asarray(model(arrays if len(arrays) > 1 else arrays[0],
                                        training=False))}


def assert_matches_keras(model, outputs, reference, atol):
    """A serving_default result against :func:`keras_reference` (seq2seq: the same tokens)."""
    from kzoo.export.signatures import is_seq2seq

    if is_seq2seq(model):
        np.testing.assert_array_equal(outputs["tokens"], reference["tokens"])
        np.testing.assert_array_equal(outputs["lengths"], reference["lengths"])
        np.testing.assert_allclose(outputs["scores"], reference["scores"], atol=atol)
        if "attention" in reference:
            np.testing.assert_allclose(outputs["attention"], reference["attention"], atol=atol)
    else:
        np.testing.assert_allclose(outputs["outputs"], reference["outputs"], atol=atol)


def check_tflite(exported):
    """``{name: (model, _, tflite path)}``: no Flex op, and serving_default equals Keras within
    1e-4 at two batch sizes and two lengths."""
    from ai_edge_litert.interpreter import Interpreter

    for name, (model, _, path) in exported.items():
        with open(path, "rb") as handle:
            content = handle.read()
        assert b"Flex" not in content, name
        runner = Interpreter(model_content=content).get_signature_runner("serving_default")
        for batch_size, time in ((1, 4), (3, 9)):
            feed = sample_feed(model, batch_size=batch_size, time=time, seed=batch_size)
            outputs = runner(**feed)
            assert_matches_keras(model, outputs, keras_reference(model, feed), atol=1e-4)


SERVE_SCRIPT = os.path.join(os.path.dirname(__file__), "serve_in_fresh_process.py")


def serve_in_fresh_process(jobs, directory):
    """Run :mod:`serve_in_fresh_process` once for all ``jobs`` (``{key: (saved_model_dir,
    feed)}``, or ``(saved_model_dir, feed, signature_name)``); returns ``{key: {"direct":
    outputs, "predict_request": outputs, "rest": outputs, "rest_inputs": inputs, "spec":
    {input: [dtype, *dims]}}}`` ("rest" only for serving_default)."""
    manifest = {}
    for key, (saved, feed, *signature) in jobs.items():
        feed_path = os.path.join(directory, f"{key}.feed.npz")
        np.savez(feed_path, **feed)
        manifest[key] = {"saved_model": saved, "feed": feed_path,
                         "output": os.path.join(directory, f"{key}.out.npz"),
                         "signature": signature[0] if signature else "serving_default"}
    manifest_path = os.path.join(directory, "manifest.json")
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run([sys.executable, SERVE_SCRIPT, manifest_path], env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = {}
    for key, entry in manifest.items():
        with np.load(entry["output"]) as data:
            grouped = {}
            for name in data.files:
                group, tensor = name.split("/", 1)
                grouped.setdefault(group, {})[tensor] = data[name]
        results[key] = grouped
    return results


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """The fast subset, exported once: ``{name: (model, saved_model_dir, tflite_path)}``."""
    return export_models(FAST_MODELS, str(tmp_path_factory.mktemp("exported")))
