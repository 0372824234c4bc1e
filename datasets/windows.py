"""Sliding windows over a series, for forecasting: window w -> the next value or next k values.

    data = sliding_window(temperatures, window=24, horizon=6)   # (24, 1) -> (6,)
    data = sliding_window(features, window=7, horizon=1, target_index=0)   # (7, F) -> (1,)
"""

import numpy as np
import tensorflow as tf


def sliding_window(series, window, horizon=1, stride=1, target_index=None):
    """Cuts a series into ``(window, next steps)`` pairs, for forecasting.

    Example ``s`` (for s = 0, stride, 2·stride, ... while it fits) pairs the steps
    ``[s, s + window)`` of ``series`` with the ``horizon`` steps right after them:

        inputs_s = series[s : s + window],  targets_s = series[s + window : s + window + horizon]

    A 1-D series (time,) gives inputs (window, 1) and targets (horizon,); a 2-D series (time,
    features) gives inputs (window, features) and targets (horizon, features), or (horizon,)
    of column ``target_index``. The pairs are not batched.

    Args:
        series: the series, (time,) or (time, features): an array, a tensor, or a
            ``tf.data.Dataset`` of steps (a file read step by step, never held in memory).
        window: the steps of each input, a positive int.
        horizon: the steps of each target, right after the input; a positive int (default 1).
        stride: the steps from one example's start to the next, a positive int (default 1).
        target_index: for a (time, features) series, the one column to predict; None
            (default) predicts every column.

    Returns:
        A ``tf.data.Dataset`` of ``(inputs, targets)`` pairs.

    Raises:
        ValueError: if ``window``, ``horizon`` or ``stride`` is not a positive int, the series
            is neither 1-D nor 2-D, or ``target_index`` is given for a 1-D series.

    Example:

    ```python
    import numpy as np
    import kzoo.datasets

    hourly = np.arange(10, dtype="float32")
    pairs = kzoo.datasets.sliding_window(hourly, window=4, horizon=2, stride=3)
    for inputs, targets in pairs:
        print(inputs.numpy().ravel(), targets.numpy())
    # [0. 1. 2. 3.] [4. 5.]
    # [3. 4. 5. 6.] [7. 8.]
    ```
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
