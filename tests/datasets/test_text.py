import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.datasets.text import TokenVectorizer, build_vocabulary, decode, RESERVED_TOKENS


def test_vocabulary_is_by_count_then_alphabetical_and_capped():
    texts = ["b a c a", "c b a", "d"]
    assert build_vocabulary(texts) == ["a", "b", "c", "d"]  # a:3, then b:2 and c:2 by name
    assert build_vocabulary(texts, max_size=6) == ["a", "b"]  # 4 reserved + 2
    assert build_vocabulary(texts, min_count=2) == ["a", "b", "c"]
    dataset = tf.data.Dataset.from_tensor_slices(texts)
    assert build_vocabulary(dataset) == build_vocabulary(list(reversed(texts)))


def test_vectorizer_uses_the_reserved_ids():
    vectorizer = TokenVectorizer(["one", "twenty-three"], add_start=True, add_end=True)
    assert vectorizer.get_vocabulary() == list(RESERVED_TOKENS) + ["one", "twenty-three"]
    ids = vectorizer(tf.constant("twenty-three one seven")).numpy()
    np.testing.assert_array_equal(ids, [1, 5, 4, 3, 2])  # start, words, unknown, end
    batch = vectorizer(tf.constant(["one", "one one one"])).numpy()
    np.testing.assert_array_equal(batch, [[1, 4, 2, 0, 0], [1, 4, 4, 4, 2]])  # 0-padded


def test_character_level_and_standardize():
    chars = build_vocabulary(["dreißig"], level="char")
    vectorizer = TokenVectorizer(chars, level="char", max_length=3)
    tokens = [vectorizer.get_vocabulary()[i] for i in vectorizer(tf.constant("ßig!")).numpy()]
    assert tokens == ["ß", "i", "g"]
    words = TokenVectorizer(["great", "movie"], standardize="lower_and_strip_punctuation")
    np.testing.assert_array_equal(words(tf.constant("Great<br />movie!!")).numpy(), [4, 5])
    assert decode([1, 4, 5, 2, 4], words.get_vocabulary()) == "great movie"


def test_vectorizer_saves_with_a_model(tmp_path):
    vectorizer = TokenVectorizer(["a", "b"], add_end=True)
    text = keras.Input((), dtype="string")
    model = keras.Model(text, vectorizer(text))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(tf.constant(["b a x"])).numpy(), [[5, 4, 3, 2]])


def test_vectorizer_rejects_reserved_tokens_and_bad_level():
    with pytest.raises(ValueError, match="reserved"):
        TokenVectorizer(["a", "<end>"])
    with pytest.raises(ValueError, match="level"):
        TokenVectorizer(["a"], level="subword")
