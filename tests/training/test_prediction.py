"""``predict``: text in, text out through a run's vocabularies."""

import pytest

from kzoo import training


def test_text_round_trips_through_a_vocabulary():
    words = ["", "[UNK]", "[START]", "[END]", "twenty", "three", "-"]
    assert training.encode_text("twenty three", words) == [4, 5]
    assert training.encode_text("twenty nine", words) == [4, 1]      # unknown word
    chars = ["", "[UNK]", "[START]", "[END]", "d", "r", "e", "i"]
    assert training.encode_text("drei", chars) == [4, 5, 6, 7]
    assert training.decode_ids([4, 5, 6, 7, 3, 4], chars, end_id=3) == "drei"
    assert training.decode_ids([4, 5, 3], words, end_id=3) == "twenty three"
    assert training.encode_text("5 9", None) == [5, 9]
    with pytest.raises(ValueError, match="token ids"):
        training.encode_text("drei", None)

