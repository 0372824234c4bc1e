"""``from_csv``: a forecaster's data from a CSV series, and the scaling that travels with the
model.

The rows are time steps in file order. Splits are contiguous blocks (train, then validation,
then test), each after a gap of one window, so no input of one split overlaps a step of
another. The batches hold the values as they are in the file (inputs in their units, targets
in the target's); :func:`with_scaling` puts the train split's standardization inside the model,
so the model (and its export) takes raw values and returns the target's units.
"""

import csv
import math

import numpy as np
import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.files import lines as file_lines
from kzoo.datasets.files.errors import DataFileError
from kzoo.datasets.files.splits import check_fractions

TASKS = ("many_to_one", "many_to_many")
FILLS = (None, "ffill", "interpolate")
MISSING = frozenset({"", "na", "nan", "null", "none", "?"})
SERIES_FRACTIONS = (0.7, 0.15, 0.15)


def from_csv(path, split="train", *, target=None, features=None, window=24, horizon=1,
             stride=1, time_column=None, task="many_to_one", fill=None,
             split_fractions=SERIES_FRACTIONS, delimiter=",", batch_size=32, shuffle=None,
             seed=0):
    """Loads a CSV series as forecasting batches and a ``DatasetInfo``, like ``load``.

    The file has a header; each row is one time step, in order. Example ``s`` of a split reads
    ``window`` steps of the ``features`` columns and forecasts the ``target`` column:

    - ``task="many_to_one"``: inputs ``(window, F)`` -> the next ``horizon`` targets
      ``(horizon,)``: ``target[s + window : s + window + horizon]``.
    - ``task="many_to_many"``: the same inputs -> at every input step t the ``horizon``
      targets after it, ``(window, horizon)``: ``target[s + t + 1 : s + t + 1 + horizon]``.

    The splits are the first ``split_fractions[0]`` of the rows (train), then validation, then
    test, each after a gap of ``window`` rows. Batches hold raw values; ``info.statistics``
    holds the train split's ``input_mean``/``input_std`` (per feature) and
    ``target_mean``/``target_std``, which :func:`with_scaling` puts inside a model.
    ``info.baselines`` holds ``persistence_mse`` and ``persistence_mae`` on the same split
    (every forecast = the target's last input value), in the target's units.

    Args:
        path: the CSV file.
        split: ``"train"``, ``"validation"`` or ``"test"`` (default ``"train"``).
        target: the column to forecast (a header name); None (default) takes the only column
            that is neither ``time_column`` nor another feature.
        features: the input columns, a list of header names; None (default): the target alone.
            The target is an input too (it is added first when missing).
        window: the steps of each input (default 24).
        horizon: the steps forecast after each input step (default 1).
        stride: the steps from one example's start to the next (default 1).
        time_column: a column of timestamps (text, kept out of the inputs): the first and last
            time of each split go to ``info.statistics["split_times"]``; None (default).
        task: ``"many_to_one"`` (default) or ``"many_to_many"``.
        fill: what to do with a missing value (an empty cell, ``NA``, ``NaN``, ``null``, ``?``):
            None (default) raises an error naming the line and column; ``"ffill"`` repeats the
            last value before it; ``"interpolate"`` draws a straight line between its
            neighbours. Missing values before a column's first value take that first value.
        split_fractions: the train, validation and test shares of the rows (default
            ``(0.7, 0.15, 0.15)``).
        delimiter: the CSV's separator (default ``","``).
        batch_size: examples per batch (default 32).
        shuffle: shuffle the examples (seeded, every epoch); None (default): the train split.
        seed: the shuffle's seed (default 0).

    Returns:
        A tuple ``(data, info)``: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches and a
        ``DatasetInfo`` (``model_config``: ``input_dim``, ``output_dim`` = horizon,
        ``num_classes=None``).

    Raises:
        DataFileError: (a ``ValueError``) naming the file, line and column: a missing or empty
            file, a line that is not UTF-8, a row with another number of columns than the
            header, a header without a named column (listing the columns found), a
            non-numeric cell, a missing value without ``fill``, a series shorter than
            ``window + horizon``, a split too short for one example.
        ValueError: an option that is not valid.

    Example:

    ```python
    import kzoo
    import kzoo.datasets as kd

    data, info = kd.from_csv(kd.example_file("series.csv"), target="temp", time_column="date",
                             window=12, batch_size=8)
    inputs, targets = next(iter(data))
    print(inputs.shape, targets.shape)       # (8, 12, 1) (8, 1): raw degrees
    model = kd.with_scaling(kzoo.build("many_to_one_gru", **info.model_config, units=8), info)
    print(model(inputs).shape)               # (8, 1), in the target's units
    ```
    """
    where = "from_csv"
    check_choice(where, "split", split, core.SPLITS)
    check_choice(where, "task", task, TASKS)
    check_choice(where, "fill", fill, FILLS)
    for name, value in (("window", window), ("horizon", horizon), ("stride", stride),
                        ("batch_size", batch_size)):
        check_positive_int(where, name, value)
    fractions = check_fractions(where, split_fractions)
    path = file_lines.check_file(path)
    table = read_table(path, target=target, features=features, time_column=time_column,
                       delimiter=delimiter, fill=fill)
    size = window + horizon
    total = len(table.values)
    if total < size:
        raise DataFileError(path, f"the series has {total} rows, shorter than one example: "
                                  f"window + horizon = {window} + {horizon} = {size}")
    bounds = split_bounds(total, fractions, window)
    start, stop = bounds[split]
    if stop - start < size:
        raise DataFileError(path, f"the {split} split would be empty: rows {start + 2}-"
                                  f"{stop + 1} of the file ({max(stop - start, 0)} steps) are "
                                  f"fewer than window + horizon = {size}; with "
                                  f"split_fractions {fractions} and a gap of one window "
                                  f"between splits, the series needs more rows or a smaller "
                                  f"window")
    train_start, train_stop = bounds["train"]
    train_values = table.values[train_start:train_stop]
    input_mean = train_values.mean(axis=0)
    input_std = _nonzero(train_values.std(axis=0))
    target_values = train_values[:, 0]
    target_mean, target_std = float(target_values.mean()), float(_nonzero(target_values.std()))

    values = table.values[start:stop]
    starts = np.arange(0, len(values) - size + 1, stride)
    targets, last = _windows(values, starts, window, horizon, task)
    persistence = last - targets
    data = tf.data.Dataset.from_tensor_slices(starts.astype("int64")).map(
        _example_maker(values, window, horizon, task), num_parallel_calls=tf.data.AUTOTUNE)
    data = core.finish(data, batch_size=batch_size,
                       shuffle=split == "train" if shuffle is None else bool(shuffle),
                       seed=int(seed), num_examples=len(starts))
    statistics = {"input_mean": [float(v) for v in input_mean],
                  "input_std": [float(v) for v in input_std],
                  "target_mean": target_mean, "target_std": target_std,
                  "features": list(table.features), "target": table.features[0],
                  "rows": {name: max(b - a, 0) for name, (a, b) in bounds.items()}}
    if table.times is not None:
        statistics["split_times"] = {
            name: [table.times[a], table.times[b - 1]] if b > a else None
            for name, (a, b) in bounds.items()}
    models = tuple(f"{task}_{cell}" for cell in ("gru", "lstm", "rnn"))
    info = core.DatasetInfo(
        name=path.name, split=split, pattern=task, suggested_models=models,
        model_config={"input_dim": len(table.features), "num_classes": None,
                      "output_dim": horizon},
        options={"path": str(path), "target": table.features[0],
                 "features": list(table.features), "window": window, "horizon": horizon,
                 "stride": stride, "time_column": time_column, "task": task, "fill": fill,
                 "split_fractions": fractions, "delimiter": delimiter},
        num_examples=len(starts), statistics=statistics,
        baselines={"persistence_mse": float(np.mean(persistence ** 2)),
                   "persistence_mae": float(np.mean(np.abs(persistence)))},
        description=f"{path.name}: {window} steps of {', '.join(table.features)} -> the next "
                    f"{horizon} of {table.features[0]!r} ({task})")
    return data, info


def with_scaling(model, info):
    """``model`` inside the scaling of a series: raw inputs in, the target's units out.

    .. math::

        \\text{outputs} = \\text{model}\\left(\\frac{x - \\mu_x}{\\sigma_x}\\right)
                          \\cdot \\sigma_y + \\mu_y

    with the train split's per-feature mean and standard deviation ``mu_x``, ``sigma_x`` and
    the target's ``mu_y``, ``sigma_y`` (``info.statistics`` of :func:`from_csv`), held by two
    ``keras.layers.Normalization`` layers, so they are saved in the ``.keras`` file and in
    every export. Train the result on the raw batches: its loss is in the target's units.
    Statistics without ``target_mean`` (a classifier's, ``from_labelled_sequences``) scale
    the inputs only.

    Args:
        model: a Keras model of real inputs ``(batch, time, features)``.
        info: the ``DatasetInfo`` of :func:`from_csv` (or its ``statistics`` dict).

    Returns:
        A new ``keras.Model`` (named like ``model``) wrapping it; ``model`` itself when the
        statistics hold no scaling (a dataset of another kind).

    Example:

    ```python
    import numpy as np
    import kzoo
    import kzoo.datasets as kd

    statistics = {"input_mean": [50.0], "input_std": [10.0], "target_mean": 50.0,
                  "target_std": 10.0}
    inner = kzoo.build("many_to_one_gru", input_dim=1, num_classes=None, output_dim=1, units=4)
    model = kd.with_scaling(inner, statistics)
    print(model(np.full((1, 6, 1), 50.0, "float32")).shape)     # (1, 1), near 50 degrees
    ```
    """
    import keras

    statistics = getattr(info, "statistics", info) or {}
    if "input_mean" not in statistics:
        return model
    mean = np.asarray(statistics["input_mean"], "float32")
    std = np.asarray(statistics["input_std"], "float32")
    inputs = keras.Input(model.inputs[0].shape[1:], name="raw_inputs")
    scaled = keras.layers.Normalization(axis=-1, mean=mean, variance=np.square(std),
                                        name="input_scaling")(inputs)
    outputs = model(scaled)
    if "target_mean" in statistics:
        width = outputs.shape[-1]
        outputs = keras.layers.Normalization(
            axis=-1, mean=np.full(width, statistics["target_mean"], "float32"),
            variance=np.full(width, statistics["target_std"] ** 2, "float32"), invert=True,
            name="target_scaling")(outputs)
    return keras.Model(inputs, outputs, name=model.name)


# -- reading the table ----------------------------------------------------------------------------
class Table:
    """The numeric columns of a series file: ``values`` (rows, features), the target first."""

    def __init__(self, values, features, times):
        self.values = values
        self.features = features
        self.times = times


def read_table(path, *, target, features, time_column, delimiter, fill):
    """Reads the columns of ``path`` a series needs, checking every cell."""
    numbered = file_lines.decoded_lines(path)
    _, first = next(numbered)
    header = next(csv.reader([first], delimiter=delimiter))
    if time_column is not None:
        file_lines.field_lookup(path, header, time_column, "time")
    if target is None:
        candidates = [c for c in header if c != time_column and c not in (features or ())]
        if len(candidates) != 1:
            found = ", ".join(repr(c) for c in header)
            raise DataFileError(path, f"give `target`, the column to forecast; columns found: "
                                      f"{found}")
        target = candidates[0]
    names = [target, *[f for f in (features or ()) if f != target]]
    if time_column in names:
        raise ValueError(f"from_csv: the time column {time_column!r} cannot be a feature")
    indices = [file_lines.field_lookup(path, header, name, "feature" if name != target
                                       else "target") for name in names]
    time_index = header.index(time_column) if time_column is not None else None
    rows, times, missing = [], [], []
    for number, text in numbered:
        fields = next(csv.reader([text], delimiter=delimiter))
        if len(fields) != len(header):
            raise DataFileError(path, f"{len(fields)} column(s), expected {len(header)} as in "
                                      f"the header", line=number)
        row = []
        for name, index in zip(names, indices):
            cell = fields[index].strip()
            if cell.lower() in MISSING:
                if fill is None:
                    raise DataFileError(path, "missing value; fill='ffill' or "
                                              "fill='interpolate' fills such cells",
                                        line=number, column=name)
                missing.append((len(rows), number, name))
                row.append(math.nan)
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataFileError(path, f"{cell!r} is not a number", line=number,
                                    column=name)
            row.append(value)
        rows.append(row)
        if time_index is not None:
            times.append(fields[time_index])
    values = np.asarray(rows, "float64").reshape(len(rows), len(names))
    if missing:
        values = _filled(path, values, names, fill)
    return Table(values.astype("float32"), tuple(names),
                 times if time_index is not None else None)


def _filled(path, values, names, fill):
    for column, name in enumerate(names):
        series = values[:, column]
        known = np.flatnonzero(~np.isnan(series))
        if not len(known):
            raise DataFileError(path, "every value of the column is missing", column=name)
        if fill == "ffill":
            index = np.where(~np.isnan(series), np.arange(len(series)), 0)
            index = np.maximum.accumulate(index)
            index[:known[0]] = known[0]
            values[:, column] = series[index]
        else:
            values[:, column] = np.interp(np.arange(len(series)), known, series[known])
    return values


def _nonzero(std):
    # A constant column: dividing by 1 keeps it as it is (centred) instead of infinite.
    return np.where(np.asarray(std) > 0, std, 1.0)


# -- splits and windows ---------------------------------------------------------------------------
def split_bounds(total, fractions, gap):
    """``{split: (first row, end row)}``: contiguous blocks in time, ``gap`` rows between."""
    train_end = int(total * fractions[0])
    validation_end = int(total * (fractions[0] + fractions[1]))
    return {"train": (0, train_end),
            "validation": (min(train_end + gap, validation_end), validation_end),
            "test": (min(validation_end + gap, total), total)}


def _windows(values, starts, window, horizon, task):
    """The targets and the persistence forecast of every example, as NumPy arrays."""
    target = values[:, 0]
    if task == "many_to_one":
        targets = np.stack([target[s + window:s + window + horizon] for s in starts])
        last = target[starts + window - 1][:, None]
        return targets, last
    steps = np.lib.stride_tricks.sliding_window_view(target[1:], horizon)   # [t] = t+1..t+h
    targets = np.stack([steps[s:s + window] for s in starts])
    last = np.stack([target[s:s + window] for s in starts])[:, :, None]
    return targets, last


def _example_maker(values, window, horizon, task):
    series = tf.constant(values, tf.float32)

    def example(start):
        inputs = series[start:start + window]
        target = series[:, 0]
        if task == "many_to_one":
            return inputs, target[start + window:start + window + horizon]
        offsets = start + 1 + tf.range(window, dtype=tf.int64)[:, None] + \
            tf.range(horizon, dtype=tf.int64)[None, :]
        return inputs, tf.gather(target, offsets)

    return example
