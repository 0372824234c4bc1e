"""Sliding windows over a series, for forecasting: window w -> the next value or next k values.

    data = sliding_window(temperatures, window=24, horizon=6)   # (24, 1) -> (6,)
    data = sliding_window(features, window=7, horizon=1, target_index=0)   # (7, F) -> (1,)
"""

import numpy as np
import tensorflow as tf


def sliding_window(series, window, horizon=1, stride=1, target_index=None):
    """``tf.data.Dataset`` of ``(inputs, targets)``: steps ``[s, s + window)`` of ``series`` and the
    ``horizon`` steps right after them, for s = 0, stride, 2·stride, ... while both fit.

    A 1-D series (T,) gives inputs (window, 1) and targets (horizon,). A 2-D series (T, F)
    gives inputs (window, F) and targets (horizon, F), or (horizon,) of column
    ``target_index``. ``series`` is an array, a tensor, or a ``tf.data.Dataset`` of steps.
    """
    for name, value in (("window", window), ("horizon", horizon), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"sliding_window: `{name}` must be a positive integer, got "
                             f"{value!r}")
    if isinstance(series, tf.data.Dataset):
        steps = series
        rank = len(series.element_spec.shape) + 1
    else:
        series = tf.convert_to_tensor(np.asarray(series) if not tf.is_tensor(series) else series)
        rank = series.shape.rank
        steps = tf.data.Dataset.from_tensor_slices(series)
    if rank not in (1, 2):
        raise ValueError(f"sliding_window: `series` must be (time,) or (time, features), got "
                         f"rank {rank}")
    if target_index is not None and rank != 2:
        raise ValueError("sliding_window: `target_index` needs a (time, features) series")
    size = window + horizon
    windows = steps.window(size, shift=stride, drop_remainder=True).flat_map(
        lambda w: w.batch(size, drop_remainder=True))

    def split(chunk):
        inputs, targets = chunk[:window], chunk[window:]
        if rank == 1:
            return inputs[:, None], targets
        if target_index is not None:
            targets = targets[:, target_index]
        return inputs, targets

    return windows.map(split)
