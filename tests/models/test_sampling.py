"""sequence_loss / SequenceLoss / SequenceAccuracy against NumPy, and the samplers' plans."""

import numpy as np
import pytest
import tensorflow as tf

from kzoo.models.sampling import (ScheduledSampler, SequenceAccuracy, SequenceLoss,
                                  TeacherForcingSampler, sequence_loss)


def numpy_sequence_loss(labels, logits):
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    mask = labels != 0
    return token[mask].mean()


@pytest.fixture
def batch(rng):
    labels = np.array([[3, 4, 2, 0], [5, 2, 0, 0], [6, 7, 8, 2]], "int32")
    logits = rng.normal(size=(3, 4, 9)).astype("float32")
    return labels, logits


def test_sequence_loss_is_the_mean_over_non_pad_tokens(batch):
    labels, logits = batch
    np.testing.assert_allclose(sequence_loss(labels, logits), numpy_sequence_loss(labels, logits),
                               rtol=1e-5)
    weights = np.ones(labels.shape, "float32")
    weights[2] = 0
    np.testing.assert_allclose(sequence_loss(labels, logits, weights),
                               numpy_sequence_loss(labels[:2], logits[:2]), rtol=1e-5)
    assert float(sequence_loss(np.zeros((2, 3), "int32"), logits[:2, :3])) == 0.0


def test_keras_loss_and_metric_count_each_token_once_even_with_a_keras_mask(batch):
    labels, logits = batch
    expected = numpy_sequence_loss(labels, logits)
    np.testing.assert_allclose(SequenceLoss()(labels, logits), expected, rtol=1e-5)
    masked = tf.constant(logits)
    masked._keras_mask = tf.not_equal(labels, 0)
    np.testing.assert_allclose(SequenceLoss()(labels, masked), expected, rtol=1e-5)
    metric = SequenceAccuracy()
    metric.update_state(labels, logits)
    mask = labels != 0
    np.testing.assert_allclose(metric.result(), (logits.argmax(-1) == labels)[mask].mean(),
                               rtol=1e-6)
    assert SequenceLoss.from_config(SequenceLoss(pad_id=3).get_config()).pad_id == 3


def test_scheduled_sampler_plans():
    target_in = tf.zeros((64, 10), tf.int32)
    assert TeacherForcingSampler().plan(target_in, 9, training=True) is None
    always = ScheduledSampler(1.0, seed=1)
    use_prediction, noise = always.plan(target_in, 9, training=True)
    assert noise is None
    np.testing.assert_array_equal(use_prediction[:, 0], False)
    np.testing.assert_array_equal(use_prediction[:, 1:], True)
    assert always.plan(target_in, 9, training=False) is None
    sometimes = ScheduledSampler(0.25, mode="sample", seed=1)
    use_prediction, noise = sometimes.plan(target_in, 9, training=True)
    assert noise.shape == (64, 10, 9) and np.all(np.isfinite(noise))
    assert 0.15 < np.mean(use_prediction[:, 1:]) < 0.35
    sometimes.probability.assign(0.0)
    assert not np.any(sometimes.plan(target_in, 9, training=True)[0])
    config = ScheduledSampler(0.3, mode="sample").get_config()
    assert (config["probability"], config["mode"]) == (0.3, "sample")
    with pytest.raises(ValueError, match="probability"):
        ScheduledSampler(1.5)
    with pytest.raises(ValueError, match="mode"):
        ScheduledSampler(0.5, mode="nucleus")
