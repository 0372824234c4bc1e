"""Every registered model exports: its SavedModel, reloaded in a fresh process without kzoo and
called directly, through a TF Serving PredictRequest and with the sample REST body, equals Keras
within 1e-5 (seq2seq: the same tokens); its float TFLite file has no Flex op and equals Keras
within 1e-4 at two batch sizes and two lengths.

The default run checks one model per I/O pattern; ``-m slow`` serves all of ``list_models()``,
one test per pattern, so that ``pytest -n 2`` runs them side by side. Every model's float TFLite
file is checked at its default size by the slow test in ``test_tflite.py``, which converts it
anyway to measure the dynamic file.
"""

import pytest

import kzoo

from .conftest import FAST_MODELS, assert_matches_keras, check_tflite, export_models, \
    keras_reference, sample_feed, serve_in_fresh_process


def check_served(exported, directory):
    jobs = {name: (saved, sample_feed(model)) for name, (model, saved, _) in exported.items()}
    served = serve_in_fresh_process(jobs, directory)
    for name, (model, _, _) in exported.items():
        reference = keras_reference(model, jobs[name][1])
        for route in ("direct", "predict_request"):
            assert_matches_keras(model, served[name][route], reference, atol=1e-5)
        rest_reference = keras_reference(model, served[name]["rest_inputs"])
        assert_matches_keras(model, served[name]["rest"], rest_reference, atol=1e-5)


def test_fast_subset_covers_every_pattern():
    patterns = {kzoo.model_info(name).pattern for name in FAST_MODELS}
    assert patterns == set(kzoo.models.PATTERNS)


def test_saved_model_served_in_fresh_process_equals_keras(exported, tmp_path):
    check_served(exported, str(tmp_path))


def test_tflite_builtins_equal_keras_at_two_batches_and_lengths(exported):
    check_tflite(exported)


def models_of(pattern):
    """The registered models of an I/O pattern."""
    return [name for name in kzoo.list_models() if kzoo.model_info(name).pattern == pattern]


def test_the_patterns_split_every_registered_model():
    """The slow test below serves ``models_of(p)`` for each pattern p: together, every model."""
    split = [name for pattern in kzoo.models.PATTERNS for name in models_of(pattern)]
    assert sorted(split) == sorted(kzoo.list_models())


@pytest.mark.slow
@pytest.mark.parametrize("pattern", kzoo.models.PATTERNS)
def test_every_model_saved_model_served_in_fresh_process(pattern, tmp_path):
    exported = export_models(models_of(pattern), str(tmp_path / "exported"),
                             formats=("saved_model",))
    check_served(exported, str(tmp_path))
