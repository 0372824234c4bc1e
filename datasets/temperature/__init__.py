"""``temperature``: forecast Seattle's hourly temperature from the hours before it.

The ``window`` hours before -> the next ``horizon`` hours, through :func:`sliding_window` over
each week-long block (the splits are whole weeks, interleaved, so no window spans two splits).
Values are standardized with the train split's mean and standard deviation
(``info.statistics``); ``info.baselines["persistence_mse"]`` repeats the last hour.

Options (``kzoo.datasets.load("temperature", **options)``):
    window: the hours of each input (default 24).
    horizon: the hours to forecast, right after the window (default 1); window + horizon must
        fit in a week.
    stride: the hours from one window's start to the next (default 1).
"""

import numpy as np
import tensorflow as tf

from kzoo.checks import check_positive_int
from kzoo.datasets import core
from kzoo.datasets.temperature.temperature_dataset_builder import BLOCK_HOURS, Builder
from kzoo.datasets.windows import sliding_window

OPTIONS = {"window": 24, "horizon": 1, "stride": 1}


@core.register_dataset(
    "temperature", pattern="many_to_one", options=OPTIONS,
    description="Seattle hourly temperatures 2010: a window of hours -> the next hour(s)")
def load_temperature(*, split, batch_size, data_dir, shuffle, seed, window, horizon, stride):
    name = "temperature"
    where = f"dataset {name!r}"
    for option, value in (("window", window), ("horizon", horizon), ("stride", stride)):
        check_positive_int(where, option, value)
    if window + horizon > BLOCK_HOURS:
        raise ValueError(f"dataset 'temperature': `window` + `horizon` must fit in a week "
                         f"({BLOCK_HOURS} hours), got {window} + {horizon}")
    builder = core.prepare(Builder, None, data_dir)
    train = np.concatenate([e["temperature"] for e in core.as_numpy(builder, "train")])
    mean, std = float(train.mean()), float(train.std())
    blocks = builder.as_dataset(split=split, shuffle_files=False).map(
        lambda e: (e["temperature"] - mean) / std)
    examples = blocks.flat_map(
        lambda series: sliding_window(series, window, horizon=horizon, stride=stride))
    pairs = list(examples.as_numpy_iterator())
    if not pairs:
        raise ValueError(f"dataset 'temperature': split {split!r} has no window of "
                         f"{window} + {horizon} hours")
    inputs = np.stack([p[0] for p in pairs])
    targets = np.stack([p[1] for p in pairs])
    persistence = np.mean((inputs[:, -1, :] - targets) ** 2)
    data = core.finish(tf.data.Dataset.from_tensor_slices((inputs, targets)),
                       batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=len(targets))
    info = core.DatasetInfo(
        name=name, split=split, pattern="many_to_one",
        suggested_models=("many_to_one_gru", "many_to_one_lstm", "many_to_one_rnn"),
        model_config={"input_dim": 1, "num_classes": None, "output_dim": horizon},
        options={"window": window, "horizon": horizon, "stride": stride},
        num_examples=len(targets), statistics={"mean": mean, "std": std},
        baselines={"persistence_mse": float(persistence)},
        description=f"Seattle hourly temperature: {window} h -> next {horizon} h "
                    f"(standardized)", builder_info=builder.info)
    return data, info
