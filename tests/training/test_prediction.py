"""``predict``: text in, text out through the model's own vectorizers; a run whose model carries
no vocabularies reads its ``vocab/`` token lists through ``TokenVectorizer``, one without any
reads and writes token ids."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kzoo import training
from kzoo.layers.text import RESERVED_TOKENS, TokenVectorizer
from kzoo.models.seq2seq import UnknownTokensWarning

from .conftest import TINY_SEQ2SEQ

# TINY_SEQ2SEQ's vocabularies have 10 ids: the 4 reserved ones and 6 tokens.
SOURCE_WORDS = ["one", "two", "three", "four", "five", "six"]
TARGET_CHARACTERS = list("abcdef")


def before_end(ids, end_id=2):
    """The ids before the first end or padding id."""
    kept = []
    for i in ids:
        if i in (end_id, 0):
            break
        kept.append(int(i))
    return kept


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A seq2seq run on the example dataset: its model carries no vocabularies."""
    out = tmp_path_factory.mktemp("prediction") / "run"
    training.train("seq2seq_attention", "example", out=out, epochs=1, **TINY_SEQ2SEQ)
    return out


def with_vocab(run_dir, tmp_path, target_level=None):
    """A copy of ``run_dir`` with vocab/ token lists (a dataset that gives vocabularies but no
    vectorizers), its target read at ``target_level``."""
    copy = tmp_path / "with_vocab"
    shutil.copytree(run_dir, copy)
    (copy / "vocab").mkdir()
    for side, tokens in (("source", SOURCE_WORDS), ("target", TARGET_CHARACTERS)):
        (copy / "vocab" / f"{side}.json").write_text(json.dumps([*RESERVED_TOKENS, *tokens]))
    if target_level:
        config = json.loads((copy / "config.json").read_text())
        config["data_options"] = {"target_level": target_level}
        (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("target_level", [None, "char"])
def test_a_run_without_carried_vocabularies_reads_its_vocab_lists(run_dir, tmp_path,
                                                                  target_level):
    copy = with_vocab(run_dir, tmp_path, target_level)
    texts = ["one two three", "six seven"]
    with pytest.warns(UnknownTokensWarning, match="'seven' in 'six seven'"):
        outputs = training.predict(copy, texts, max_length=8)
    source = TokenVectorizer(SOURCE_WORDS, level="word")
    target = TokenVectorizer(TARGET_CHARACTERS, level=target_level or "word")
    ids = source(tf.constant(texts)).numpy()
    np.testing.assert_array_equal(ids, [[4, 5, 6], [9, 3, 0]])
    model = training.load_run_model(run_dir)
    # (An explicit length: the default counts characters when words decode into characters.)
    tokens = model.generate(ids, max_length=8)["tokens"]
    assert max(len(before_end(row)) for row in tokens.numpy()) >= 2  # the joiner shows
    assert outputs == [t.decode() for t in target.detokenize(tokens, end_id=2).numpy()]


def test_vocab_lists_that_do_not_fit_the_model_are_an_error(run_dir, tmp_path):
    copy = with_vocab(run_dir, tmp_path)
    (copy / "vocab" / "source.json").write_text(json.dumps([*RESERVED_TOKENS, "one"]))
    with pytest.raises(ValueError, match=r"vocab do not fit its model: .*has 5 tokens"):
        training.predict(copy, ["one"])


def test_a_run_without_vocabularies_reads_and_writes_token_ids(run_dir):
    model = training.load_run_model(run_dir)
    tokens = model.generate(np.array([[5, 6, 7], [4, 0, 0]], "int32"))["tokens"].numpy()
    expected = [" ".join(map(str, before_end(row))) for row in tokens]
    assert training.predict(run_dir, ["5 6 7", "4"]) == expected
    with pytest.raises(ValueError, match=r"no vocabulary; give token ids \('5 9 12'\), got "
                                         r"'one'"):
        training.predict(run_dir, ["one"])
    with pytest.raises(ValueError, match="an input has no token: ''"):
        training.predict(run_dir, ["5", ""])
