"""kzoo.datasets' readers of a user's files: stable splits, the batches and infos load() gives,
and one clear DataFileError (file, line, column) for each kind of bad input."""

import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.datasets as kd
from kzoo.datasets.files.splits import split_index
from kzoo.datasets.files.vocabulary import BoundedCounter


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def words_of(data, vocabulary):
    """The decoded source text of every example of seq2seq batches (char level)."""
    return [kd.decode(source, vocabulary, level="char")
            for (source, _), _ in data.unbatch().as_numpy_iterator()]


# -- sentence pairs --------------------------------------------------------------------------------
WORDS = [a + b + c for a in "abcd" for b in "abcd" for c in "ab"]          # 32 distinct sources


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    # Sources repeat (every word twice, in other lines) and extra columns follow the target.
    lines = [f"{w}\t{w.upper()}\textra column" for w in WORDS + WORDS[::-1]]
    return write(tmp_path_factory.mktemp("pairs") / "pairs.tsv", "\n".join(lines) + "\n")


def test_the_shipped_pairs_split_by_hash_golden_counts():
    # Golden numbers: the split of a sentence is Fingerprint64 of its words; a change of the
    # hash or of the key would move examples between splits of every user's file.
    _, info = kd.from_text_pairs(kd.example_file("pairs.tsv"))
    assert info.statistics["rows"] == {"train": 323, "validation": 41, "test": 36}
    assert info.pattern == "seq2seq" and info.suggested_models[0] == "seq2seq_attention"
    assert info.model_config == {"source_vocab_size": 104, "target_vocab_size": 104,
                                 "start_id": 1, "end_id": 2}


def test_splits_are_disjoint_cover_every_line_and_keep_duplicates_together(pairs_file):
    seen = {}
    for split in kd.SPLITS:
        data, info = kd.from_text_pairs(pairs_file, split, level="char", batch_size=8,
                                        split_fractions=(0.5, 0.25, 0.25))
        seen[split] = words_of(data, info.vocabularies["source"])
        assert len(seen[split]) == info.num_examples
    assert sorted(sum(seen.values(), [])) == sorted(WORDS * 2)
    for split, words in seen.items():
        assert all(words.count(w) == 2 for w in words), split      # duplicates together
    assert not set(seen["train"]) & (set(seen["validation"]) | set(seen["test"]))
    assert all(seen.values())


def test_editing_and_appending_lines_moves_no_other_example():
    before = [f"sentence number {i}" for i in range(200)]
    after = before[:50] + ["an edited line"] + before[51:] + [f"new {i}" for i in range(50)]
    fractions = (0.6, 0.2, 0.2)
    old = split_index(tf.constant(before), "lower", fractions).numpy()
    new = split_index(tf.constant(after), "lower", fractions).numpy()
    kept = [i for i in range(200) if i != 50]
    assert (old[kept] == new[kept]).all()
    # The key is the standardized words: case and punctuation do not move a sentence.
    same = split_index(tf.constant(["Go home!", "go   home"]), "lower_and_strip_punctuation",
                       fractions).numpy()
    assert same[0] == same[1]
    assert sorted(set(old.tolist())) == [0, 1, 2]


def test_two_aligned_files_and_a_csv_give_the_tsv_data(tmp_path, pairs_file):
    _, tsv = kd.from_text_pairs(pairs_file, split_fractions=(0.5, 0.25, 0.25))
    sources = write(tmp_path / "src.txt", "\n".join(WORDS + WORDS[::-1]) + "\n")
    targets = write(tmp_path / "tgt.txt", "\n".join(w.upper() for w in WORDS + WORDS[::-1]))
    _, two = kd.from_text_pairs(sources, target_path=targets, split_fractions=(0.5, 0.25, 0.25))
    rows = "".join(f'"x, {w}",{w},{w.upper()}\n' for w in WORDS + WORDS[::-1])
    csv = write(tmp_path / "pairs.csv", "note,en,pl\n" + rows)
    data, named = kd.from_text_pairs(csv, source_column="en", target_column="pl",
                                     batch_size=64, split_fractions=(0.5, 0.25, 0.25))
    for info in (two, named):
        assert info.statistics["rows"] == tsv.statistics["rows"]
        assert info.vocabularies == tsv.vocabularies
    # The CSV's quoted commas are read by the pipeline as by the checking pass.
    assert sum(int(y.shape[0]) for _, y in data) == tsv.num_examples


def test_vocabulary_options_and_the_model_carries_them(pairs_file):
    data, info = kd.from_text_pairs(pairs_file, source_level="char", target_level="word",
                                    standardize=None, max_length=2, vocab_size=6, min_count=2)
    train = [w for w, s in zip(WORDS, split_index(tf.constant(WORDS), None,
                                                  kd.files.splits.DEFAULT_FRACTIONS).numpy())
             if s == 0]
    assert info.vocabularies["source"] == kd.TokenVectorizer(kd.build_vocabulary(
        train * 2, level="char", max_size=6, min_count=2)).get_vocabulary()
    assert len(info.vocabularies["target"]) == 6
    (source, target_in), target_out = next(iter(data))
    assert source.shape[1] == 2 and target_out.shape[1] == 2       # one word + end
    assert (target_in[:, 0].numpy() == 1).all() and (target_out[:, -1].numpy() == 2).all()
    model = kzoo.build("seq2seq_lstm", **info.model_config, units=4,
                       vocabularies=info.vectorizers)
    assert model.vocabularies["source"]["tokens"] == info.vocabularies["source"]


def test_bounded_counter_is_exact_below_capacity_and_keeps_the_frequent_above():
    texts = ["a b c a b a", "d e a"]
    exact = BoundedCounter(capacity=100)
    exact.update_tokens(texts, "word", None)
    assert exact.vocabulary() == kd.build_vocabulary(texts) == ["a", "b", "c", "d", "e"]
    small = BoundedCounter(capacity=4)
    small.update_tokens(["x x x x y y y z z w v u"], "word", None)   # 6 distinct > 4
    assert small.prunes == 1 and small.vocabulary() == ["x", "y"]
    assert small.max_pruned_count == 2


# -- bad input -------------------------------------------------------------------------------------
def test_bad_pair_files_raise_one_error_naming_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.tsv", "one\tun\ntwo\tdeux\nthree only\nfour\tquatre\n")
    with pytest.raises(kd.DataFileError, match=r"bad\.tsv, line 3: 1 column\(s\), expected at "
                                               r"least 2.*skip_bad_lines"):
        kd.from_text_pairs(bad)
    _, info = kd.from_text_pairs(bad, skip_bad_lines=True, split_fractions=(1, 0, 0))
    assert info.statistics["skipped_lines"] == 1 and info.num_examples == 3
    with pytest.raises(kd.DataFileError, match="empty"):
        kd.from_text_pairs(write(tmp_path / "empty.tsv", ""))
    with pytest.raises(kd.DataFileError, match="no line of data"):
        kd.from_text_pairs(write(tmp_path / "blank.tsv", "\n\n"))
    latin1 = write(tmp_path / "latin1.tsv", "one\tun\ncafé\tcafé\n", encoding="latin-1")
    with pytest.raises(kd.DataFileError, match=r"latin1\.tsv, line 2: not UTF-8 text "
                                               r"\(byte 0xe9"):
        kd.from_text_pairs(latin1)
    with pytest.raises(kd.DataFileError, match=r"columns found: 'en', 'fr'"):
        kd.from_text_pairs(write(tmp_path / "p.csv", "en,fr\na,b\n"), source_column="english")
    with pytest.raises(kd.DataFileError, match=r"p2\.csv, line 3: 3 column\(s\), expected 2"):
        kd.from_text_pairs(write(tmp_path / "p2.csv", "en,fr\na,b\nc,d,e\n"))
    short = write(tmp_path / "short.txt", "a\nb\n")
    with pytest.raises(kd.DataFileError, match=r"short\.txt: ends at line 2"):
        kd.from_text_pairs(write(tmp_path / "long.txt", "a\nb\nc\n"), target_path=short)
    with pytest.raises(kd.DataFileError, match="the test split would be empty"):
        kd.from_text_pairs(write(tmp_path / "few.tsv", "a\tb\n"), "test")
    with pytest.raises(kd.DataFileError, match="no such file"):
        kd.from_text_pairs(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="split_fractions"):
        kd.from_text_pairs(bad, split_fractions=(0.5, 0.5, 0.5))


# -- series ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ramp_file(tmp_path_factory):
    # value = the row's index, so every window and target says where it came from.
    rows = "".join(f"t{i},{i},{2 * i}\n" for i in range(100))
    return write(tmp_path_factory.mktemp("series") / "ramp.csv", "time,value,double\n" + rows)


def test_series_splits_are_contiguous_with_a_one_window_gap(ramp_file):
    spans = {}
    for split in kd.SPLITS:
        data, info = kd.from_csv(ramp_file, split, target="value", window=5, horizon=2,
                                 time_column="time", batch_size=100, shuffle=False)
        inputs, targets = next(iter(data))
        spans[split] = (float(inputs.numpy().min()), float(targets.numpy().max()))
        assert inputs.shape[1:] == (5, 1) and targets.shape[1:] == (2,)
        np.testing.assert_array_equal(targets[:, 0], inputs[:, -1, 0] + 1)
        # A ramp: repeating the last value is off by 1 then 2, so MSE 2.5 and MAE 1.5.
        assert info.baselines == {"persistence_mse": 2.5, "persistence_mae": 1.5}
    assert spans == {"train": (0, 69), "validation": (75, 84), "test": (90, 99)}
    assert info.statistics["rows"] == {"train": 70, "validation": 10, "test": 10}
    assert info.statistics["split_times"]["validation"] == ["t75", "t84"]
    assert info.statistics["input_mean"] == [34.5] and info.statistics["target_mean"] == 34.5
    assert info.model_config == {"input_dim": 1, "num_classes": None, "output_dim": 2}


def test_many_to_many_targets_follow_every_input_step(ramp_file):
    data, info = kd.from_csv(ramp_file, "test", target="double", features=["value"],
                             window=4, horizon=3, task="many_to_many", shuffle=False)
    inputs, targets = next(iter(data))
    assert inputs.shape[1:] == (4, 2) and targets.shape[1:] == (4, 3)
    # inputs[..., 0] is the target (double), [..., 1] value; targets[t, k] = double at t+1+k.
    expected = inputs[:, :, :1].numpy() + 2 * np.arange(1, 4)
    np.testing.assert_array_equal(targets, expected)
    assert info.pattern == "many_to_many" and info.suggested_models[0] == "many_to_many_gru"
    assert info.baselines["persistence_mae"] == pytest.approx(4.0)     # 2, 4, 6 off


def test_with_scaling_takes_raw_values_and_returns_target_units(ramp_file, tmp_path):
    data, info = kd.from_csv(ramp_file, target="double", features=["value"], window=3)
    inner = kzoo.build("many_to_one_gru", **info.model_config, units=4)
    model = kd.with_scaling(inner, info)
    inputs = next(iter(data))[0]
    s = info.statistics
    scaled = (inputs - np.array(s["input_mean"])) / np.array(s["input_std"])
    expected = inner(scaled).numpy() * s["target_std"] + s["target_mean"]
    np.testing.assert_allclose(model(inputs), expected, rtol=1e-5, atol=1e-4)
    model.save(tmp_path / "scaled.keras")
    import keras
    loaded = keras.saving.load_model(tmp_path / "scaled.keras")
    np.testing.assert_allclose(loaded(inputs), model(inputs), rtol=1e-6)
    assert kd.with_scaling(inner, {"mean": 1.0}) is inner


def test_missing_values_error_or_fill(tmp_path):
    gappy = write(tmp_path / "gappy.csv", "a,b\n1,10\n,20\n3,NA\n5,40\n")
    with pytest.raises(kd.DataFileError, match=r"gappy\.csv, line 3, column 'a': missing "
                                               r"value; fill="):
        kd.from_csv(gappy, target="a", features=["b"], window=1)
    from kzoo.datasets.files.series import read_table

    ffill = read_table(gappy, target="a", features=["b"], time_column=None, delimiter=",",
                       fill="ffill").values
    np.testing.assert_array_equal(ffill, [[1, 10], [1, 20], [3, 20], [5, 40]])
    line = read_table(gappy, target="a", features=["b"], time_column=None, delimiter=",",
                      fill="interpolate").values
    np.testing.assert_array_equal(line, [[1, 10], [2, 20], [3, 30], [5, 40]])


def test_bad_series_files_raise_one_clear_error(tmp_path, ramp_file):
    with pytest.raises(kd.DataFileError, match=r"line 3, column 'b': 'x2' is not a number"):
        kd.from_csv(write(tmp_path / "text.csv", "a,b\n1,2\n3,x2\n"), target="b")
    with pytest.raises(kd.DataFileError, match=r"columns found: 'time', 'value', 'double'"):
        kd.from_csv(ramp_file, target="price")
    with pytest.raises(kd.DataFileError, match=r"give `target`.*'time', 'value', 'double'"):
        kd.from_csv(ramp_file)
    with pytest.raises(kd.DataFileError, match=r"100 rows, shorter than one example: window "
                                               r"\+ horizon = 99 \+ 2 = 101"):
        kd.from_csv(ramp_file, target="value", window=99, horizon=2)
    with pytest.raises(kd.DataFileError, match="the validation split would be empty"):
        kd.from_csv(ramp_file, "validation", target="value", window=12)
    with pytest.raises(kd.DataFileError, match=r"line 2: 2 column\(s\), expected 3"):
        kd.from_csv(write(tmp_path / "ragged.csv", "a,b,c\n1,2\n"), target="a")


# -- labelled sequences ----------------------------------------------------------------------------
def test_labelled_text_from_csv_and_folder(tmp_path):
    rows = "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(30))
    data, info = kd.from_labelled_text(write(tmp_path / "r.csv", "text,label\n" + rows),
                                       batch_size=64)
    assert info.class_names == ("neg", "pos") and info.model_config["num_classes"] == 2
    ids, labels = next(iter(data))
    vocabulary = info.vocabularies["inputs"]
    for row, label in zip(ids.numpy(), labels.numpy()):
        assert kd.decode(row, vocabulary).split()[0] == ("good" if label == 1 else "bad")
    for name in ("pos", "neg"):
        (tmp_path / "folder" / name).mkdir(parents=True)
        for i in range(12):
            write(tmp_path / "folder" / name / f"{i}.txt", f"{name} review {i}")
    _, folder = kd.from_file(tmp_path / "folder")
    assert folder.class_names == ("neg", "pos") and sum(folder.statistics["rows"].values()) == 24


def test_a_label_only_outside_train_is_an_error(tmp_path):
    # "zzz 7" hashes into the test split (split_fractions 0.5/0.25/0.25).
    texts = [f"zzz {i}" for i in range(40)]
    splits = split_index(tf.constant(texts), "lower_and_strip_punctuation",
                         (0.5, 0.25, 0.25)).numpy()
    lonely = texts[int(np.flatnonzero(splits == 2)[0])]
    rows = "".join(f"{t},{'rare' if t == lonely else 'common' + str(i % 2)}\n"
                   for i, t in enumerate(texts))
    with pytest.raises(kd.DataFileError, match=r"label\(s\) \['rare'\] appear only outside "
                                               r"the train split \(in test"):
        kd.from_labelled_text(write(tmp_path / "l.csv", "text,label\n" + rows),
                              split_fractions=(0.5, 0.25, 0.25))


def test_labelled_sequences_from_npz_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = np.where(x.sum(axis=1) > 0, "up", "down")
    np.savez(tmp_path / "s.npz", x=x, y=y)
    data, info = kd.from_file(tmp_path / "s.npz", batch_size=100, shuffle=False)
    inputs, ids = next(iter(data))
    assert inputs.shape[1:] == (6, 1) and info.class_names == ("down", "up")
    np.testing.assert_array_equal(ids.numpy(), (inputs.numpy().sum(axis=(1, 2)) > 0))
    csv = "label," + ",".join(f"t{i}" for i in range(6)) + "\n" + "".join(
        f"{label}," + ",".join(str(v) for v in row.tolist()) + "\n" for row, label in zip(x, y))
    _, from_csv = kd.from_file(write(tmp_path / "s.csv", csv), batch_size=100)
    assert from_csv.statistics["rows"] == info.statistics["rows"]
    assert from_csv.model_config == {"input_dim": 1, "num_classes": 2}
    with pytest.raises(kd.DataFileError, match=r"no array 'inputs'; arrays found: x, y"):
        kd.from_labelled_sequences(tmp_path / "s.npz", inputs_key="inputs")


# -- dispatch and examples -------------------------------------------------------------------------
def test_from_file_picks_the_reader(tmp_path):
    assert kd.data_format_of(kd.example_file("pairs.tsv")) == "text_pairs"
    assert kd.data_format_of(kd.example_file("series.csv")) == "series"
    assert kd.data_format_of(write(tmp_path / "p.csv", "source,target\n")) == "text_pairs"
    assert kd.data_format_of(write(tmp_path / "t.csv", "Text,Label\n")) == "text_classes"
    assert kd.data_format_of(write(tmp_path / "q.csv", "label,x1\n")) == "sequence_classes"
    assert kd.data_format_of(tmp_path / "q.csv", {"target": "x1"}) == "series"
    with pytest.raises(ValueError, match=r"series data has no option\(s\) \['windw'\].*window=24"):
        kd.from_file(kd.example_file("series.csv"), target="temp", windw=3)
    with pytest.raises(ValueError, match="data_format"):
        kd.from_file(kd.example_file("series.csv"), data_format="video")
    _, info = kd.from_file(kd.example_file("series.csv"), target="temp", window=24)
    assert info.baselines["persistence_mae"] < 1.0 and info.num_examples > 400
