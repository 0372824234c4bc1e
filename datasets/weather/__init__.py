"""``weather``: tomorrow's weather class from the days before (the course's next-day example).

- ``task="many_to_one"``: the ``window`` days before day t -> day t's class.
- ``task="synced"``: days t-w..t-1 -> the classes of days t-w+1..t (one per step).
  Both on Seattle 2012-2015 (vega_datasets); a day's inputs are its 4 measurements
  (log1p precipitation, max/min temperature, wind; standardized with train statistics) and the
  one-hot of its class (drizzle, fog, rain, snow, sun): ``input_dim`` 9.
- ``task="toy"``: sequences of the course's sunny/cloudy/rainy/thundery (S,C,R,T) from a fixed
  Markov chain, one-hot inputs -> the next day's class at every step.

Splits are whole months, interleaved (see ``split_of_block``): a target day belongs to exactly
one split; inputs may reach into the month before. ``info.baselines["persistence_accuracy"]``
is "tomorrow = today" on the same targets.

Options (``kzoo.datasets.load("weather", **options)``):
    task: ``"many_to_one"`` (default), ``"synced"`` or ``"toy"``.
    window: the days of each input, at most 28 (default 4; not used by ``"toy"``).
"""

import numpy as np
import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.weather.weather_dataset_builder import Builder, MAX_HISTORY, MEASUREMENTS, \
    SEATTLE_CLASSES, TOY_CLASSES, toy_bayes_accuracy

TASKS = ("many_to_one", "synced", "toy")
OPTIONS = {"task": "many_to_one", "window": 4}


def _measurements(days):
    values = tf.stack([tf.cast(days[m], tf.float32) for m in MEASUREMENTS], axis=-1)
    # Precipitation is heavy-tailed (0 on most days, 50 mm on a few): log1p tames it.
    return tf.concat([tf.math.log1p(values[..., :1]), values[..., 1:]], axis=-1)


def _train_statistics(builder):
    """Mean and standard deviation of the measurements over the train split's days."""
    days = builder.as_dataset(split="train", shuffle_files=False).map(
        lambda e: _measurements({m: e["days"][m][-1:] for m in MEASUREMENTS})[0])
    values = np.stack(list(days.as_numpy_iterator()))
    return values.mean(axis=0), values.std(axis=0) + 1e-6


@core.register_dataset(
    "weather", pattern="many_to_one", options=OPTIONS,
    description="Seattle daily weather 2012-2015: next-day class (many-to-one or synced); "
                "the toy S,C,R,T sequences")
def load_weather(*, split, batch_size, data_dir, shuffle, seed, task, window):
    name = "weather"
    where = f"dataset {name!r}"
    check_choice(where, "task", task, TASKS)
    if task == "toy":
        return _load_toy(split=split, batch_size=batch_size, data_dir=data_dir,
                         shuffle=shuffle, seed=seed)
    check_positive_int(where, "window", window)
    if window > MAX_HISTORY:
        raise ValueError(f"dataset 'weather': `window` must be at most {MAX_HISTORY}, got "
                         f"{window}")
    builder = core.prepare(Builder, "seattle", data_dir)
    mean, std = _train_statistics(builder)
    classes = len(SEATTLE_CLASSES)

    def features(days):
        scaled = (_measurements(days) - mean) / std
        return tf.concat([scaled, tf.one_hot(days["weather"], classes)], axis=-1)

    def to_example(example):
        days = example["days"]
        inputs = features({k: v[-window - 1:-1] for k, v in days.items()})
        labels = tf.cast(days["weather"], tf.int32)
        targets = labels[-1] if task == "many_to_one" else labels[-window:]
        return inputs, targets

    def filter_usable(example):
        days = example["days"]
        enough = tf.shape(days["block"])[0] >= window + 1
        if task == "many_to_one":
            return enough
        blocks = days["block"][-window:]
        same_month = tf.reduce_all(tf.equal(blocks, days["block"][-1]))
        return tf.logical_and(enough, same_month)

    examples = builder.as_dataset(split=split, shuffle_files=False).filter(
        filter_usable).map(to_example)
    inputs, targets = _as_arrays(examples)
    # Persistence: tomorrow's class = today's (the one-hot part of each input step).
    today = inputs[:, -1, 4:].argmax(-1) if task == "many_to_one" else inputs[:, :, 4:].argmax(-1)
    baselines = {"persistence_accuracy": float(np.mean(today == targets))}
    data = core.finish(tf.data.Dataset.from_tensor_slices((inputs, targets)),
                       batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=len(targets))
    pattern = "many_to_one" if task == "many_to_one" else "many_to_many"
    info = core.DatasetInfo(
        name=name, split=split, pattern=pattern,
        suggested_models=tuple(f"{pattern}_{cell}" for cell in ("lstm", "gru", "rnn")),
        model_config={"input_dim": 4 + classes, "num_classes": classes},
        options={"task": task, "window": window}, num_examples=len(targets),
        class_names=SEATTLE_CLASSES, baselines=baselines,
        statistics={"mean": mean.tolist(), "std": std.tolist(), "features": list(MEASUREMENTS)},
        description=f"Seattle weather, {window} days -> next-day class ({task})",
        builder_info=builder.info)
    return data, info


def _as_arrays(examples):
    pairs = list(examples.as_numpy_iterator())
    inputs = np.stack([p[0] for p in pairs]).astype(np.float32)
    targets = np.stack([p[1] for p in pairs]).astype(np.int32)
    return inputs, targets


def _load_toy(*, split, batch_size, data_dir, shuffle, seed):
    builder = core.prepare(Builder, "toy", data_dir)
    classes = len(TOY_CLASSES)

    def to_example(example):
        days = tf.cast(example["weather"], tf.int32)
        return tf.one_hot(days[:-1], classes), days[1:]

    inputs, targets = _as_arrays(builder.as_dataset(split=split, shuffle_files=False).map(
        to_example))
    baselines = {"persistence_accuracy": float(np.mean(inputs.argmax(-1) == targets)),
                 "bayes_accuracy": toy_bayes_accuracy()}
    data = core.finish(tf.data.Dataset.from_tensor_slices((inputs, targets)),
                       batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=len(targets))
    info = core.DatasetInfo(
        name="weather", split=split, pattern="many_to_many",
        suggested_models=("many_to_many_rnn", "many_to_many_lstm", "many_to_many_gru"),
        # The course's worked example: 4 one-hot inputs, 3 hidden units, 4 softmax outputs.
        model_config={"input_dim": classes, "num_classes": classes, "units": 3},
        options={"task": "toy"}, num_examples=len(targets), class_names=TOY_CLASSES,
        baselines=baselines, description="toy S,C,R,T weather sequences (next day, synced)",
        builder_info=builder.info)
    return data, info
