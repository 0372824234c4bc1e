"""Learning benchmarks: the suggested zoo model of each built-in dataset, trained on the CPU for a
bounded time, against a stated bar. Prints a markdown table (the README copies it).

    python benchmarks/learning.py                       # everything (about 20-25 min on 2 cores)
    python benchmarks/learning.py --only adding_lstm digits_rows
    python benchmarks/learning.py --data-dir /tmp/kzoo_data

The bars (from the datasets issue):
- seq2seq_attention on number_words English -> German: >= 95% exact match on held-out numbers,
  trained within 10 minutes; seq2seq_lstm (no attention, same budget) measurably lower.
- adding, T = 100 (markers among the first T/2 - 1 steps): LSTM MSE < 0.01; SimpleRNN stays
  near the 0.167 of predicting the mean (0.15 to 0.18).
- weather: next-day accuracy above the persistence baseline (tomorrow = today).
- digits read row by row: >= 95% accuracy.
Plus the other patterns: digits captioning (one-to-many), temperature forecasting, the toy
S,C,R,T weather with the course's 3-unit Elman RNN.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kzoo  # noqa: E402
import kzoo.datasets as kd  # noqa: E402
import kzoo.models as km  # noqa: E402


def build_and_compile(name, config, learning_rate, steps=None, clipnorm=1.0):
    model = kzoo.build(name, **config)
    schedule = learning_rate
    if steps:  # cosine decay to 1% over the run: large steps early, no late spikes
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    model.compile(keras.optimizers.Adam(schedule, clipnorm=clipnorm),
                  **km.compile_args(name, **config))
    return model


def fit_for(model, train, *, epochs, seconds, validation=None, monitor=None, warmup=None,
            warmup_epochs=0):
    """Train up to ``epochs`` epochs, stopping after the epoch that crosses ``seconds``; the
    first ``warmup_epochs`` of them on ``warmup`` instead of ``train`` (a curriculum).
    With ``monitor`` (a validation metric, higher is better) the best epoch's weights are
    kept. Returns (epochs run, training seconds)."""
    start = time.time()
    best, best_weights = -np.inf, None
    for epoch in range(epochs):
        data = warmup if epoch < warmup_epochs else train
        history = model.fit(data, epochs=1, verbose=0, validation_data=validation)
        if monitor is not None:
            score = history.history[monitor][-1]
            if score > best:
                best, best_weights = score, model.get_weights()
        if time.time() - start > seconds:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    return epoch + 1, time.time() - start


def count_batches(data):
    return sum(1 for _ in data)


def row(task, model, metric, value, bar, passed, seconds, epochs, note=""):
    return {"task": task, "model": model, "metric": metric, "value": value, "bar": bar,
            "passed": passed, "seconds": seconds, "epochs": epochs, "note": note}


# -- seq2seq: number_words English -> German ------------------------------------------------------
def exact_match(model, test):
    hits = total = 0
    for (source, _), target_out in test:
        target_out = target_out.numpy()
        tokens = model.generate(source, max_length=target_out.shape[1])["tokens"].numpy()
        for out, target in zip(tokens, target_out):
            length = int((target != 0).sum())
            total += 1
            hits += int(out.shape[0] >= length and np.array_equal(out[:length], target[:length]))
    return hits / total


def translate(name, data_dir, results):
    keras.utils.set_random_seed(0)
    train, info = kd.load("number_words", batch_size=64, data_dir=data_dir,
                          target_language="de")
    test, _ = kd.load("number_words", split="test", batch_size=250, data_dir=data_dir,
                      target_language="de")
    epochs = 12
    config = dict(info.model_config, units=128, source_embedding_dim=32,
                  target_embedding_dim=32)
    model = build_and_compile(name, config, 3e-3, steps=epochs * count_batches(train))
    ran, seconds = fit_for(model, train, epochs=epochs, seconds=570)
    score = exact_match(model, test)
    if name == "seq2seq_attention":
        results["attention_exact_match"] = score
        return row("number_words en->de (1000 held-out numbers)", name, "exact match", score,
                   ">= 0.95 within 600 s", score >= 0.95 and seconds <= 600, seconds, ran)
    attention = results.get("attention_exact_match")
    passed = attention is not None and score <= attention - 0.01
    return row("number_words en->de (1000 held-out numbers)", name, "exact match", score,
               "below attention", passed, seconds, ran,
               "" if attention is None else f"attention - this = {attention - score:+.3f}")


def translate_attention(data_dir, results):
    return translate("seq2seq_attention", data_dir, results)


def translate_lstm(data_dir, results):
    return translate("seq2seq_lstm", data_dir, results)


# -- adding, T = 100 ------------------------------------------------------------------------------
# Both models get the same schedule: ADDING_WARMUP epochs on the train split of the "halves"
# placement (one marker in each half; the nearer one teaches a net to store a marked value),
# then the task itself, the default "early" placement (both markers among the first T/2 - 1
# steps), which the test split holds. Trained on "early" alone the LSTM stayed at the 0.167
# plateau within the budget (lr 3e-3 and 1e-2, batch 16 to 64, up to 24 epochs or 12,500
# updates, forget bias 3); on "halves" at lr 1e-2 it leaves the plateau in its 2nd or 3rd epoch.
ADDING_EPOCHS, ADDING_WARMUP, ADDING_LEARNING_RATE = 8, 4, 1e-2


def adding(name, data_dir, seconds):
    keras.utils.set_random_seed(0)
    load = dict(data_dir=data_dir, length=100)
    train, info = kd.load("adding", batch_size=64, **load)
    warmup, _ = kd.load("adding", batch_size=64, placement="halves", **load)
    test, _ = kd.load("adding", split="test", batch_size=500, **load)
    config = dict(info.model_config, units=64)
    model = build_and_compile(name, config, ADDING_LEARNING_RATE,
                              steps=ADDING_EPOCHS * count_batches(train))
    ran, seconds = fit_for(model, train, epochs=ADDING_EPOCHS, seconds=seconds, warmup=warmup,
                           warmup_epochs=ADDING_WARMUP)
    mse = model.evaluate(test, verbose=0, return_dict=True)["loss"]
    targets = np.concatenate([y.numpy() for _, y in test])
    mean_mse = float(np.mean((targets - 1.0) ** 2))  # predicting the mean, on this test split
    note = f"first {min(ran, ADDING_WARMUP)} epochs on \"halves\"; predicting 1.0: {mean_mse:.3f}"
    return mse, seconds, ran, note


def adding_lstm(data_dir, results):
    mse, seconds, ran, note = adding("many_to_one_lstm", data_dir, 330)
    return row("adding T=100", "many_to_one_lstm", "test MSE", mse, "< 0.01", mse < 0.01,
               seconds, ran, note)


def adding_rnn(data_dir, results):
    mse, seconds, ran, note = adding("many_to_one_rnn", data_dir, 330)
    return row("adding T=100", "many_to_one_rnn", "test MSE", mse, "near 0.167 (0.15-0.18)",
               0.15 <= mse <= 0.18, seconds, ran, note)


# -- weather --------------------------------------------------------------------------------------
def weather(data_dir, results):
    keras.utils.set_random_seed(0)
    options = {"task": "many_to_one", "window": 4}
    train, info = kd.load("weather", batch_size=32, data_dir=data_dir, **options)
    validation, _ = kd.load("weather", split="validation", batch_size=256, data_dir=data_dir,
                            **options)
    test, test_info = kd.load("weather", split="test", batch_size=256, data_dir=data_dir,
                              **options)
    name = info.suggested_models[0]
    config = dict(info.model_config, units=16)
    model = build_and_compile(name, config, 3e-3)
    ran, seconds = fit_for(model, train, epochs=40, seconds=120, validation=validation,
                           monitor="val_accuracy")
    accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    persistence = test_info.baselines["persistence_accuracy"]
    return row("weather, Seattle next-day class (4 days)", name, "test accuracy", accuracy,
               f"> persistence {persistence:.3f}", accuracy > persistence, seconds, ran,
               "best epoch on validation")


def weather_toy(data_dir, results):
    keras.utils.set_random_seed(0)
    train, info = kd.load("weather", batch_size=32, data_dir=data_dir, task="toy")
    test, test_info = kd.load("weather", split="test", batch_size=256, data_dir=data_dir,
                              task="toy")
    name = info.suggested_models[0]
    model = build_and_compile(name, info.model_config, 1e-2)
    ran, seconds = fit_for(model, train, epochs=30, seconds=90)
    accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    persistence = test_info.baselines["persistence_accuracy"]
    return row("weather toy S,C,R,T (3 hidden units)", name, "test accuracy", accuracy,
               f">= persistence {persistence:.3f}", accuracy >= persistence, seconds, ran,
               f"optimum in expectation {test_info.baselines['bayes_accuracy']:.3f}")


# -- digits ---------------------------------------------------------------------------------------
def digits_rows(data_dir, results):
    keras.utils.set_random_seed(0)
    train, info = kd.load("digits", batch_size=32, data_dir=data_dir)
    validation, _ = kd.load("digits", split="validation", batch_size=256, data_dir=data_dir)
    test, _ = kd.load("digits", split="test", batch_size=256, data_dir=data_dir)
    name = info.suggested_models[0]
    config = dict(info.model_config, units=128)
    model = build_and_compile(name, config, 3e-3, steps=60 * count_batches(train))
    ran, seconds = fit_for(model, train, epochs=60, seconds=150, validation=validation,
                           monitor="val_accuracy")
    accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    return row("digits, 8 rows of 8 pixels", name, "test accuracy", accuracy, ">= 0.95",
               accuracy >= 0.95, seconds, ran, "best epoch on validation")


def digits_caption(data_dir, results):
    keras.utils.set_random_seed(0)
    train, info = kd.load("digits", batch_size=32, data_dir=data_dir, task="caption")
    test, _ = kd.load("digits", split="test", batch_size=512, data_dir=data_dir,
                      task="caption")
    name = info.suggested_models[0]
    model = build_and_compile(name, info.model_config, 3e-3, steps=40 * count_batches(train))
    ran, seconds = fit_for(model, train, epochs=40, seconds=150)
    (features, _), target_out = next(iter(test))
    target_out = target_out.numpy()
    tokens = kzoo.models.one_to_many.generate(model, features,
                                              max_length=target_out.shape[1]).numpy()
    hits = [np.array_equal(out[:int((t != 0).sum())], t[t != 0])
            for out, t in zip(tokens, target_out)]
    score = float(np.mean(hits))
    return row("digits image -> spelled name", name, "exact name", score, ">= 0.9",
               score >= 0.9, seconds, ran, "greedy decoding")


# -- temperature ----------------------------------------------------------------------------------
def temperature(data_dir, results):
    keras.utils.set_random_seed(0)
    train, info = kd.load("temperature", batch_size=64, data_dir=data_dir, window=24,
                          horizon=1)
    test, test_info = kd.load("temperature", split="test", batch_size=512, data_dir=data_dir,
                              window=24, horizon=1)
    name = info.suggested_models[0]
    config = dict(info.model_config, units=32)
    model = build_and_compile(name, config, 3e-3, steps=10 * count_batches(train))
    ran, seconds = fit_for(model, train, epochs=10, seconds=120)
    mse = model.evaluate(test, verbose=0, return_dict=True)["loss"]
    persistence = test_info.baselines["persistence_mse"]
    return row("temperature, 24 h -> next hour (standardized)", name, "test MSE", mse,
               f"< persistence {persistence:.4f}", mse < persistence, seconds, ran)


BENCHMARKS = {
    "translate_attention": translate_attention,
    "translate_lstm": translate_lstm,
    "adding_lstm": adding_lstm,
    "adding_rnn": adding_rnn,
    "weather": weather,
    "weather_toy": weather_toy,
    "digits_rows": digits_rows,
    "digits_caption": digits_caption,
    "temperature": temperature,
}


def markdown_table(rows):
    lines = ["| task | model | metric | result | bar | passed | train time | epochs | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | `{r['model']}` | {r['metric']} | {r['value']:.4f} | "
                     f"{r['bar']} | {'yes' if r['passed'] else '**no**'} | "
                     f"{r['seconds']:.0f} s | {r['epochs']} | {r['note']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--data-dir", default=None, help="where the datasets are prepared")
    args = parser.parse_args(argv)
    try:
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()
    except ImportError:
        pass
    names = args.only or list(BENCHMARKS)
    results, rows = {}, []
    for name in names:
        start = time.time()
        rows.append(BENCHMARKS[name](args.data_dir, results))
        print(f"{name}: {rows[-1]['value']:.4f} ({time.time() - start:.0f} s in all)",
              file=sys.stderr, flush=True)
    print(f"\nCPU: {os.cpu_count()} cores, TensorFlow {tf.__version__}, "
          f"kzoo {kzoo.__version__}\n")
    print(markdown_table(rows))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
