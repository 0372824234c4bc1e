"""The TFDS catalog loaders, on tfds.testing.mock_data (nothing is on disk or downloaded)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import kzoo
import kzoo.datasets as kd
import kzoo.models as km


def test_imdb_reviews_on_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=8):
        data, info = kd.load("imdb_reviews", batch_size=4, data_dir=str(tmp_path),
                             max_length=16)
        texts, labels = next(iter(data))
    assert texts.dtype.name == "int32" and texts.shape[0] == 4 and texts.shape[1] <= 16
    assert set(labels.numpy()) <= {0, 1}
    assert info.vocabularies["inputs"][:4] == ["", "<start>", "<end>", "[UNK]"]
    assert texts.numpy().max() < info.model_config["vocab_size"]
    model = kzoo.build(info.suggested_models[0], units=4, embedding_dim=4, **info.model_config)
    model.compile("adam", **km.compile_args(info.suggested_models[0], **info.model_config))
    assert np.isfinite(model.train_on_batch(texts, labels, return_dict=True)["loss"])


def test_ted_hrlr_translate_on_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=8):
        data, info = kd.load("ted_hrlr_translate", split="validation", batch_size=4,
                             data_dir=str(tmp_path), language_pair="ru_to_en")
        (source, target_in), target_out = next(iter(data))
    np.testing.assert_array_equal(target_in.numpy()[:, 0], 1)
    shifted = target_out.numpy()[:, :-1]  # target_in is [start, y], target_out [y, end]
    np.testing.assert_array_equal(target_in.numpy()[:, 1:], np.where(shifted == 2, 0, shifted))
    assert source.numpy().max() < info.model_config["source_vocab_size"]
    assert target_out.numpy().max() < info.model_config["target_vocab_size"]
    assert info.options["language_pair"] == "ru_to_en"


def test_catalog_dataset_not_on_disk_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"'imdb_reviews' is not prepared.*never downloads"):
        kd.load("imdb_reviews", data_dir=str(tmp_path))
