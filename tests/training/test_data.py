"""The trainer's data: the order of an epoch depends on (seed, epoch) only, batches are cut to a
multiple of the replica count, truncated BPTT cuts consecutive windows."""

import numpy as np
import pytest
import tensorflow as tf

from kzoo.training import data


def _batches(count=5):
    return tf.data.Dataset.range(count).map(lambda i: (tf.fill([2], i), tf.fill([2], -i)))


def _firsts(stream):
    return [int(x[0]) for x, _ in stream]



def test_epoch_order_depends_only_on_seed_and_epoch():
    full, steps = data.epoch_stream(_batches(), 0, 4, seed=3)
    tail, _ = data.epoch_stream(_batches(), 2, 4, seed=3)
    order = _firsts(full)
    assert steps == 5 and len(order) == 20
    assert _firsts(tail) == order[10:]                      # what a resumed run sees
    epochs = [order[i:i + 5] for i in range(0, 20, 5)]
    assert all(sorted(e) == [0, 1, 2, 3, 4] for e in epochs)  # each epoch: every batch once
    assert len({tuple(e) for e in epochs}) > 1                 # and in a new order
    other, _ = data.epoch_stream(_batches(), 0, 4, seed=4)
    assert _firsts(other) != order
    capped, steps = data.epoch_stream(_batches(), 0, 2, seed=3, steps_per_epoch=2)
    assert steps == 2 and _firsts(capped) == order[:2] + order[5:7]



def test_batches_are_cut_to_a_multiple_of_the_replica_count():
    rows = tf.data.Dataset.range(14).map(lambda i: (i, -i))
    batches = data.even_batches(rows.batch(8).concatenate(rows.take(1).batch(1)), 2)
    assert [list(x.numpy()) for x, _ in batches] == [list(range(8)), list(range(8, 14))]
    three = data.even_batches(rows.take(7).batch(5), 3)
    assert [(list(x.numpy()), list(y.numpy())) for x, y in three] == [([0, 1, 2], [0, -1, -2])]



def test_tbptt_chunks_are_consecutive_windows_and_the_last_holds_the_remainder():
    x = np.arange(2 * 7 * 1, dtype="float32").reshape(2, 7, 1)
    y = -np.arange(2 * 7, dtype="int32").reshape(2, 7)
    batches = tf.data.Dataset.from_tensors((x, y))
    chunks, per_batch = data.tbptt_chunks(batches, 3)
    chunks = list(chunks)
    assert per_batch == 3 and len(chunks) == 3             # 3 + 3 + the last 7 % 3 steps
    for (inputs, targets), steps in zip(chunks, [(0, 3), (3, 6), (6, 7)]):
        np.testing.assert_array_equal(inputs, x[:, slice(*steps)])
        np.testing.assert_array_equal(targets, y[:, slice(*steps)])
    whole, per_batch = data.tbptt_chunks(batches, 7)
    assert per_batch == 1 and [c[0].shape for c in whole] == [(2, 7, 1)]
    single, per_batch = data.tbptt_chunks(batches, 1)
    assert per_batch == 7 and [int(c[1][1, 0]) for c in single] == list(y[1])
    with pytest.raises(ValueError, match="longer than the sequences"):
        data.tbptt_chunks(batches, 8)



def test_tbptt_chunks_carry_a_per_sequence_target_whole():
    """A forecast's target (batch, horizon) has no time axis: every chunk gets it, as the loss
    of an untruncated run broadcasts it over every step."""
    x = np.arange(2 * 24, dtype="float32").reshape(2, 24, 1)
    y = np.array([[100.0], [200.0]], "float32")
    chunks, per_batch = data.tbptt_chunks(tf.data.Dataset.from_tensors((x, y)), 10)
    chunks = list(chunks)
    assert per_batch == 3
    assert [c[0].shape for c in chunks] == [(2, 10, 1), (2, 10, 1), (2, 4, 1)]
    for _, targets in chunks:
        np.testing.assert_array_equal(targets, y)

