"""Each TFDS builder prepares from its dummy data (or a small config), with disjoint and
repeatable splits."""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import kzoo.datasets
from kzoo.datasets import core
from kzoo.datasets.adding.adding_dataset_builder import AddingConfig, Builder as Adding, \
    adding_examples, marker_positions
from kzoo.datasets.copy_reverse.copy_reverse_dataset_builder import Builder as Copy, CopyConfig
from kzoo.datasets.digits.digits_dataset_builder import Builder as Digits, read_digits
from kzoo.datasets.number_words.number_words_dataset_builder import Builder as NumberWords, \
    NumberWordsConfig
from kzoo.datasets.temperature.temperature_dataset_builder import Builder as Temperature
from kzoo.datasets.weather.weather_dataset_builder import Builder as Weather, TOY_SIZES

DATASETS = pathlib.Path(kzoo.datasets.__file__).parent
SPLITS = ("train", "validation", "test")


def dummy(name):
    return str(DATASETS / name / "dummy_data")


def examples(builder, split):
    return core.as_numpy(builder, split)


def prepared_twice(tmp_path, builder_class, config, source_dir=None):
    return [core.prepare(builder_class, config, str(tmp_path / f"run{i}"), source_dir)
            for i in range(2)]


def test_weather_from_dummy_data(tmp_path):
    first, second = prepared_twice(tmp_path, Weather, "seattle", dummy("weather"))
    dates = {s: [e["date"] for e in examples(first, s)] for s in SPLITS}
    assert {s: [e["date"] for e in examples(second, s)] for s in SPLITS} == dates
    # 151 days, January to May 2012; the first has no day before it. March is validation
    # (month 2), May test (month 4), the rest train.
    assert sum(len(d) for d in dates.values()) == 150
    assert len(set().union(*map(set, dates.values()))) == 150
    assert {d[:7] for d in dates["validation"]} == {b"2012-03"}
    assert {d[:7] for d in dates["test"]} == {b"2012-05"}
    day = next(e for e in examples(first, "train") if e["date"] == b"2012-01-03")
    # The day itself is the last entry, after the two days before it (rain, drizzle/rain).
    np.testing.assert_allclose(day["days"]["precipitation"], [0.0, 10.9, 0.8])
    np.testing.assert_array_equal(day["days"]["weather"], [0, 2, 2])  # drizzle, rain, rain


def test_toy_weather_sizes(tmp_path):
    builder = core.prepare(Weather, "toy", str(tmp_path))
    assert {s: builder.info.splits[s].num_examples for s in SPLITS} == TOY_SIZES


def test_digits_from_dummy_data(tmp_path):
    first, second = prepared_twice(tmp_path, Digits, None, dummy("digits"))
    images, labels = read_digits(DATASETS / "digits" / "dummy_data" / "digits.csv.gz")
    indices = {s: sorted(int(e["index"]) for e in examples(first, s)) for s in SPLITS}
    assert indices == {s: sorted(int(e["index"]) for e in examples(second, s)) for s in SPLITS}
    assert sorted(sum(indices.values(), [])) == list(range(len(labels)))  # disjoint, complete
    assert [len(indices[s]) for s in SPLITS] == [28, 6, 6]
    for example in examples(first, "test"):
        np.testing.assert_array_equal(example["image"], images[example["index"]])
        assert example["label"] == labels[example["index"]]


def test_temperature_from_dummy_data(tmp_path):
    builder = core.prepare(Temperature, None, str(tmp_path), dummy("temperature"))
    starts = {s: sorted(e["start"] for e in examples(builder, s)) for s in SPLITS}
    # Five weeks: week 2 validation, week 4 test.
    assert starts == {"train": [b"2010/01/01 00:00", b"2010/01/08 00:00", b"2010/01/22 00:00"],
                      "validation": [b"2010/01/15 00:00"], "test": [b"2010/01/29 00:00"]}
    week = examples(builder, "validation")[0]["temperature"]
    assert week.shape == (168,)


def test_number_words_splits_are_disjoint_numbers(tmp_path):
    config = NumberWordsConfig(target_language="de", max_number=100)
    first, second = prepared_twice(tmp_path, NumberWords, config)
    numbers = {s: sorted(int(e["number"]) for e in examples(first, s)) for s in SPLITS}
    assert numbers == {s: sorted(int(e["number"]) for e in examples(second, s)) for s in SPLITS}
    assert sorted(sum(numbers.values(), [])) == list(range(100))
    assert [len(numbers[s]) for s in SPLITS] == [80, 10, 10]
    pairs = {int(e["number"]): (e["source"], e["target"])
             for s in SPLITS for e in examples(first, s)}
    assert pairs[23] == (b"twenty-three", b"dreiundzwanzig")


@pytest.mark.parametrize("placement, length", [("early", 30), ("halves", 6)])
def test_adding_examples_follow_the_task(tmp_path, placement, length):
    config = AddingConfig(length=length, sizes=(40, 5, 5), placement=placement)
    first, second = prepared_twice(tmp_path, Adding, config)
    for split in SPLITS:
        for a, b in zip(examples(first, split), examples(second, split)):
            np.testing.assert_array_equal(a["inputs"], b["inputs"])
    train = examples(first, "train")
    assert len(train) == 40
    for example in train:
        values, markers = example["inputs"][:, 0], example["inputs"][:, 1]
        marked = np.flatnonzero(markers)
        assert len(marked) == 2 and set(markers) == {0.0, 1.0}
        if placement == "early":  # both among the first T/2 - 1 = 14, one among the first 10
            assert marked[0] < 10 and marked[1] < 14
        else:                     # one in each half
            assert marked[0] < 3 <= marked[1]
        np.testing.assert_allclose(example["target"], values[marked].sum(), rtol=1e-6)
    held_out = {e["inputs"].tobytes() for s in ("validation", "test")
                for e in examples(first, s)}
    assert not held_out & {e["inputs"].tobytes() for e in train}


@pytest.mark.parametrize("length", [6, 7, 21, 22, 100, 101])
def test_early_markers_cover_their_windows_and_never_coincide(length):
    first, second = marker_positions(length, 20000, np.random.default_rng(0), "early")
    window = length // 2 - 1
    assert (first != second).all()
    # The first is uniform over the first min(10, T/2 - 1) steps, the second over the rest of
    # the first T/2 - 1: every allowed step occurs, none outside.
    assert set(first) == set(range(min(10, window)))
    assert set(second) == set(range(window))
    assert length - 1 - max(first.max(), second.max()) >= length / 2  # far from the end
    pairs = np.bincount(first * window + second, minlength=window * window)
    allowed = [f * window + s for f in range(min(10, window)) for s in range(window) if s != f]
    assert (pairs[allowed] > 0).all() and pairs.sum() == pairs[allowed].sum()


def test_halves_markers_keep_the_old_draws():
    """"halves" draws exactly what the builder drew before "early" existed (same seeds)."""
    rng = np.random.default_rng(1)
    rng.random((50, 10), dtype=np.float32)
    expected = rng.integers(0, 5, size=50), rng.integers(5, 10, size=50)
    inputs, _ = adding_examples(10, 50, seed=1, placement="halves")
    marked = np.nonzero(inputs[..., 1])[1].reshape(50, 2)
    np.testing.assert_array_equal(marked, np.stack(expected, axis=1))


@pytest.mark.parametrize("length, placement, message", [
    (5, "early", r"`length` must be at least 6 for placement 'early', got 5"),
    (1, "halves", r"`length` must be at least 2 for placement 'halves', got 1"),
    (10, "late", r"`placement` must be one of \('early', 'halves'\), got 'late'"),
])
def test_adding_rejects_bad_placements(length, placement, message):
    with pytest.raises(ValueError, match=message):
        marker_positions(length, 3, np.random.default_rng(0), placement)


def test_copy_sequences_are_disjoint_across_splits(tmp_path):
    builder = core.prepare(Copy, CopyConfig(length=3, num_symbols=3, sizes=(15, 6, 6)),
                           str(tmp_path))
    rows = {s: [e["symbols"].tobytes() for e in examples(builder, s)] for s in SPLITS}
    assert sum(len(set(r)) for r in rows.values()) == 27  # all 3**3 sequences, each once
    assert len(set().union(*map(set, rows.values()))) == 27
    assert isinstance(builder.info, tfds.core.DatasetInfo)
