import numpy as np
import pytest

from kzoo.datasets import sliding_window


def test_windows_of_a_series_and_of_features():
    series = np.arange(10, dtype="float32")
    pairs = list(sliding_window(series, window=3, horizon=2, stride=2).as_numpy_iterator())
    assert len(pairs) == 3  # starts 0, 2, 4 (start 6 would need steps up to 10)
    np.testing.assert_array_equal(pairs[1][0][:, 0], [2, 3, 4])
    np.testing.assert_array_equal(pairs[1][1], [5, 6])
    table = np.stack([series, -series], axis=1)
    x, y = next(sliding_window(table, window=4, target_index=1).as_numpy_iterator())
    assert x.shape == (4, 2)
    np.testing.assert_array_equal(y, [-4])


def test_bad_window_arguments():
    with pytest.raises(ValueError, match="window"):
        sliding_window(np.zeros(5), window=0)
    with pytest.raises(ValueError, match="target_index"):
        sliding_window(np.zeros(5), window=2, target_index=0)
