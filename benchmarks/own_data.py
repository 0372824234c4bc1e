"""Training on your own file: ``kzoo train --data`` against a hand-written Keras script.

    python benchmarks/own_data.py                     # both measurements (about 8 min on 2 cores)
    python benchmarks/own_data.py --only pairs --pairs 4000
    python benchmarks/own_data.py --only series

pairs: a file of English -> Spanish spelled numbers (num2words; a language pair no built-in
dataset has), one pair per line, tab-separated. ``kzoo train seq2seq_attention --data
pairs.tsv`` (its defaults, `--epochs` from the command line) is timed from start to end; then the
hand-written Keras script below (TextVectorization, a GRU encoder-decoder with dot attention,
what a user would write from the Keras examples) trains for the same wall time. Both are scored
by the exact match of greedy decoding on the same held-out pairs: the file's test split as
``kzoo.datasets.from_text_pairs`` draws it.

series: the daily maximum temperature of Seattle 2012-2015 (vega_datasets ships it) written as a
CSV; ``kzoo train many_to_one_gru --data series.csv --option target=value`` with its defaults,
then ``kzoo evaluate``: the model's MAE on the test block against persistence's (tomorrow =
today).
"""

import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def write_pairs(path, count, seed=0):
    """``count`` distinct numbers below 100,000 spelled in English, a tab, then in Spanish."""
    from num2words import num2words

    numbers = random.Random(seed).sample(range(100_000), count)
    with open(path, "w", encoding="utf-8") as handle:
        for number in numbers:
            handle.write(f"{num2words(number, lang='en')}\t{num2words(number, lang='es')}\n")


def write_series(path):
    """Seattle's daily maximum temperature, 2012-2015: ``date,value`` rows."""
    import vega_datasets

    frame = vega_datasets.data.seattle_weather()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("date,value\n")
        for date, value in zip(frame["date"], frame["temp_max"]):
            handle.write(f"{date:%Y-%m-%d},{value}\n")


def kzoo_command(*args):
    """Runs ``kzoo ARGS``; its stdout, and its wall seconds."""
    start = time.perf_counter()
    done = subprocess.run(["kzoo", *map(str, args)], text=True, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"kzoo {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout, seconds


def evaluated(run_dir):
    kzoo_command("evaluate", run_dir, "--max-examples", "100000")
    return json.loads((pathlib.Path(run_dir) / "eval.json").read_text())["metrics"]


# -- the hand-written script ---------------------------------------------------------------------
def test_pairs(path):
    """The (source, target) pairs of the file's test split, as kzoo splits it."""
    import tensorflow as tf

    from kzoo.datasets.files import splits

    lines = [line.rstrip("\n").split("\t")[:2] for line in open(path, encoding="utf-8")]
    sources = tf.constant([source for source, _ in lines])
    which = splits.split_index(sources, "lower_and_strip_punctuation",
                               splits.DEFAULT_FRACTIONS).numpy()
    return [pair for pair, split in zip(lines, which) if split == 2], \
        [pair for pair, split in zip(lines, which) if split == 0]


def keras_script(path, seconds, units=256, batch_size=64):
    """A GRU encoder-decoder with Luong dot attention in plain Keras, trained until
    ``seconds`` of wall time have passed since this function started; its exact match on the
    test pairs."""
    start = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    test, train = test_pairs(path)
    source_vec = keras.layers.TextVectorization(output_mode="int")
    target_vec = keras.layers.TextVectorization(output_mode="int")
    source_vec.adapt([s for s, _ in train])
    target_vec.adapt([f"[start] {t} [end]" for _, t in train])
    target_words = target_vec.get_vocabulary()
    start_id = target_words.index("start")

    source = source_vec([s for s, _ in train])
    target = target_vec([f"[start] {t} [end]" for _, t in train])
    data = tf.data.Dataset.from_tensor_slices(((source, target[:, :-1]), target[:, 1:]))
    data = data.shuffle(len(train), seed=0).batch(batch_size).cache()

    source_in = keras.Input((None,), dtype="int64")
    target_in = keras.Input((None,), dtype="int64")
    encoded = keras.layers.Embedding(source_vec.vocabulary_size(), units, mask_zero=True)(
        source_in)
    encoded, state = keras.layers.GRU(units, return_sequences=True, return_state=True)(encoded)
    decoder_embedding = keras.layers.Embedding(len(target_words), units, mask_zero=True)
    decoder_gru = keras.layers.GRU(units, return_sequences=True, return_state=True)
    attention = keras.layers.Attention()
    combine = keras.layers.Dense(units, activation="tanh")
    project = keras.layers.Dense(len(target_words))

    def decoder_step(tokens, encoded, state, source_mask):
        decoded, state = decoder_gru(decoder_embedding(tokens), initial_state=state)
        context = attention([decoded, encoded], mask=[None, source_mask])
        return project(combine(keras.ops.concatenate([decoded, context], -1))), state

    logits, _ = decoder_step(target_in, encoded, state, keras.ops.not_equal(source_in, 0))
    model = keras.Model([source_in, target_in], logits)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                             ignore_class=0))

    class Deadline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() - start > seconds:
                self.model.stop_training = True

    epochs = 0
    while time.perf_counter() - start < seconds:
        model.fit(data, epochs=1, verbose=0, callbacks=[Deadline()])
        epochs += 1

    # Greedy decoding, one token at a time for a batch of test sources.
    encoder = keras.Model(source_in, [encoded, state])
    hits = 0
    for first in range(0, len(test), 256):
        chunk = test[first:first + 256]
        src = source_vec([s for s, _ in chunk])
        enc, st = encoder(src)
        mask = tf.not_equal(src, 0)
        tokens = tf.fill([len(chunk), 1], tf.cast(start_id, "int64"))
        outputs = []
        for _ in range(int(target.shape[1])):
            step_logits, st = decoder_step(tokens, enc, st, mask)
            tokens = tf.argmax(step_logits[:, -1:], -1)
            outputs.append(tokens.numpy()[:, 0])
        outputs = np.stack(outputs, 1)
        wanted = target_vec([f"[start] {t} [end]" for _, t in chunk]).numpy()
        for row, want in zip(outputs, wanted):
            want = [int(t) for t in want[1:] if t]          # the words, then "end"
            hits += [int(t) for t in row[:len(want)]] == want
    return hits / len(test), epochs, time.perf_counter() - start


# -- the measurements ----------------------------------------------------------------------------
def measure_pairs(work, count, epochs):
    path = work / "pairs.tsv"
    write_pairs(path, count)
    args = ["train", "seq2seq_attention", "--data", path, "--out", work / "pairs_run", "--quiet"]
    if epochs:
        args += ["--epochs", epochs]
    _, seconds = kzoo_command(*args)
    kzoo_match = evaluated(work / "pairs_run")["exact_match"]
    script_match, script_epochs, script_seconds = keras_script(path, seconds)
    return [("pairs", f"kzoo train seq2seq_attention --data pairs.tsv ({count} en->es pairs)",
             f"exact match {kzoo_match:.3f}", f"{seconds:.0f} s"),
            ("pairs", f"hand-written Keras script, same wall time ({script_epochs} epochs)",
             f"exact match {script_match:.3f}", f"{script_seconds:.0f} s")]


def measure_series(work):
    path = work / "series.csv"
    write_series(path)
    _, seconds = kzoo_command("train", "many_to_one_gru", "--data", path, "--option",
                              "target=value", "--out", work / "series_run", "--quiet")
    metrics = evaluated(work / "series_run")
    return [("series", "kzoo train many_to_one_gru --data series.csv --option target=value",
             f"MAE {metrics['mae']:.3f} (persistence {metrics['persistence_mae']:.3f})",
             f"{seconds:.0f} s")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("pairs", "series"), default=None)
    parser.add_argument("--pairs", type=int, default=4000, help="pairs in the file")
    parser.add_argument("--epochs", type=int, default=None,
                        help="kzoo train's --epochs (default: its own)")
    parser.add_argument("--keep", default=None, help="a folder to keep the files and runs in")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common

    print(common.header("own data"))
    with tempfile.TemporaryDirectory() as temporary:
        work = pathlib.Path(args.keep or temporary)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        if args.only in (None, "pairs"):
            rows += measure_pairs(work, args.pairs, args.epochs)
        if args.only in (None, "series"):
            rows += measure_series(work)
    print("| data | command | score | wall time |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
