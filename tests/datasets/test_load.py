"""kzoo.datasets.load: batches that fit the suggested model, masked padding, clear errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.datasets as kd
import kzoo.models as km

SMALL = {
    "weather": [{}, {"task": "synced", "window": 3}, {"task": "toy"}],
    "digits": [{}, {"task": "caption"}, {"task": "pixels"}],
    "adding": [{"length": 8, "num_train": 16, "num_validation": 4, "num_test": 4},
               {"length": 8, "placement": "halves", "num_train": 16, "num_validation": 4,
                "num_test": 4}],
    "copy": [{"length": 4, "num_train": 16, "num_validation": 4, "num_test": 4}],
    "reverse": [{"length": 4, "task": "seq2seq", "num_train": 16, "num_validation": 4,
                 "num_test": 4}],
    "temperature": [{"window": 12, "horizon": 3}],
    "number_words": [{"max_number": 200, "target_language": "fr", "level": "word"}],
}
CASES = [(name, options) for name, all_options in SMALL.items() for options in all_options]


def test_every_builtin_dataset_is_covered():
    assert set(kd.list_datasets()) == set(SMALL) | {"imdb_reviews", "ted_hrlr_translate"}


@pytest.mark.parametrize("name,options", CASES,
                         ids=[f"{n}-{o.get('task', o.get('placement', ''))}" for n, o in CASES])
def test_batches_fit_the_suggested_model(name, options, data_dir):
    data, info = kd.load(name, split="validation", batch_size=4, data_dir=data_dir, **options)
    model_name = info.suggested_models[0]
    assert kzoo.model_info(model_name).pattern == info.pattern
    inputs, targets = next(iter(data))
    model = kzoo.build(model_name, **info.model_config)
    flat_inputs = tf.nest.flatten(inputs)
    if info.pattern == "seq2seq":  # a subclassed model: ((source, target_in), target_out) ids
        assert [t.dtype for t in flat_inputs + [targets]] == [tf.int32] * 3
        assert [t.shape.rank for t in flat_inputs + [targets]] == [2] * 3
    for tensor, model_input in zip(flat_inputs, getattr(model, "inputs", None) or []):
        assert tensor.dtype.name == model_input.dtype
        assert tensor.shape.rank == len(model_input.shape)
        for actual, expected in zip(tensor.shape[1:], model_input.shape[1:]):
            assert expected is None or actual == expected
    assert targets.dtype in (tf.int32, tf.float32)
    model.compile("adam", **km.compile_args(model_name, **info.model_config))
    loss = model.train_on_batch(inputs, targets, return_dict=True)["loss"]
    assert np.isfinite(loss)
    assert info.num_examples == sum(int(tf.shape(y)[0]) for _, y in data)
    for vocabulary in info.vocabularies.values():
        assert len(set(vocabulary)) == len(vocabulary)


def test_number_words_padding_is_masked(data_dir):
    data, info = kd.load("number_words", split="test", batch_size=8, data_dir=data_dir,
                         max_number=200)
    (source, target_in), target_out = next(iter(data))
    assert info.vocabularies["target"][:4] == ["", "<start>", "<end>", "[UNK]"]
    np.testing.assert_array_equal(target_in[:, 0], 1)
    lengths = tf.reduce_sum(tf.cast(target_out != 0, tf.int32), axis=1).numpy()
    # Every target ends with the end id right before its padding.
    np.testing.assert_array_equal(target_out.numpy()[np.arange(8), lengths - 1], 2)
    keras.utils.set_random_seed(0)
    model = kzoo.build("seq2seq_attention", units=8, source_embedding_dim=4,
                       target_embedding_dim=4, **info.model_config)
    row = int(np.argmin(lengths))  # the shortest target: padded in the batch
    source_length = int(tf.reduce_sum(tf.cast(source[row] != 0, tf.int32)))
    assert lengths[row] < target_out.shape[1] or source_length < source.shape[1]
    padded = model((source, target_in)).numpy()[row, :lengths[row]]
    alone = model((source[row:row + 1, :source_length],
                   target_in[row:row + 1, :lengths[row]])).numpy()[0]
    np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-5)


def test_loading_is_repeatable_and_seeded(data_dir):
    options = dict(length=8, num_train=16, num_validation=4, num_test=4)
    first = [y.numpy() for _, y in kd.load("adding", batch_size=4, data_dir=data_dir, seed=3,
                                           **options)[0]]
    again = [y.numpy() for _, y in kd.load("adding", batch_size=4, data_dir=data_dir, seed=3,
                                           **options)[0]]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))


def test_adding_placement_is_an_option_with_checks(data_dir):
    options = dict(length=12, num_train=8, num_validation=4, num_test=4)
    early, info = kd.load("adding", batch_size=8, data_dir=data_dir, shuffle=False, **options)
    halves, _ = kd.load("adding", batch_size=8, data_dir=data_dir, shuffle=False,
                        placement="halves", **options)
    assert info.options["placement"] == "early" and kd.dataset_spec("adding").options[
        "placement"] == "early"
    early_marked = np.nonzero(next(iter(early))[0].numpy()[..., 1])[1]
    halves_marked = np.nonzero(next(iter(halves))[0].numpy()[..., 1])[1]
    assert early_marked.max() < 5 and halves_marked.max() >= 6  # T/2 - 1 = 5; second half
    with pytest.raises(ValueError, match=r"dataset 'adding': `placement` must be one of \('early', "
                                         r"'halves'\), got 'late'"):
        kd.load("adding", placement="late", data_dir=data_dir, **options)
    with pytest.raises(ValueError, match=r"`length` must be an integer >= 6, got 5"):
        kd.load("adding", length=5, data_dir=data_dir)


def test_weather_reports_persistence(data_dir):
    _, info = kd.load("weather", split="test", data_dir=data_dir)
    assert 0.5 < info.baselines["persistence_accuracy"] < 0.8
    assert info.class_names == ("drizzle", "fog", "rain", "snow", "sun")


def test_unknown_dataset_split_and_option_list_the_valid_ones(data_dir):
    with pytest.raises(ValueError, match=r"unknown dataset 'wether'.*'weather'.*digits"):
        kd.load("wether")
    with pytest.raises(ValueError, match=r"unknown split 'dev'; splits: train, validation, "
                                         r"test"):
        kd.load("digits", split="dev")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['lenght'\].*length=100"):
        kd.load("adding", lenght=5)
    with pytest.raises(ValueError, match=r"dataset 'digits': `task` must be one of \('rows', "
                                         r"'caption', 'pixels'\)"):
        kd.load("digits", task="columns", data_dir=data_dir)
    with pytest.raises(ValueError, match="splits: train, test"):
        kd.load("imdb_reviews", split="validation")
