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


def test_scheduled_output_sampler_feeds_the_expected_embedding_of_the_output():
    """tfa's ScheduledOutputTrainingSampler: probability 1 feeds every step t > 0 the model's
    own output (as softmax(logits) E), probability 0 is teacher forcing; gradients flow
    through the fed-back output."""
    import keras

    import kzoo
    from kzoo.models import ScheduledOutputSampler

    keras.utils.set_random_seed(3)
    model = kzoo.build("seq2seq_attention", units=4, source_vocab_size=9, target_vocab_size=9,
                       source_embedding_dim=4, target_embedding_dim=4, scheduled_sampling=1.0,
                       scheduled_sampling_mode="output")
    assert isinstance(model.sampler, ScheduledOutputSampler)
    source_ids = np.array([[4, 5, 6], [7, 8, 0]], "int32")
    target_in = np.array([[1, 6, 6, 6], [1, 5, 5, 0]], "int32")
    logits = model((source_ids, target_in), training=True)
    # By hand: the start token's embedding, then softmax(previous logits) E at every step.
    memory, keys, memory_mask, states = model._encode(source_ids, training=False)
    embeddings = model.target_embedding.embeddings
    inputs = tf.gather(embeddings, target_in[:, 0])
    for t in range(4):
        output, states, _ = model._step(inputs, states, memory, keys, memory_mask)
        step_logits = model.output_layer(output)
        np.testing.assert_allclose(logits[:, t], step_logits, atol=1e-5)
        inputs = tf.matmul(tf.nn.softmax(step_logits), embeddings)
    teacher = model((source_ids, target_in), training=False)
    assert not np.allclose(teacher[:, 1:], logits[:, 1:], atol=1e-4)
    paths = [v.path for v in model.trainable_variables]

    def last_step_gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model((source_ids, target_in), training=True)[:, -1]**2)
        gradients = tape.gradient(loss, model.trainable_variables)
        return gradients[paths.index("logits/kernel")].numpy()

    fed_back = last_step_gradient()
    model.sampler.probability.assign(0.0)
    np.testing.assert_allclose(model((source_ids, target_in), training=True), teacher,
                               atol=1e-6)
    # The output kernel reaches the last step through the fed-back outputs too: the gradient
    # is not teacher forcing's.
    assert not np.allclose(fed_back, last_step_gradient(), rtol=1e-3, atol=0)
    config = model.sampler.get_config()
    assert "mode" not in config and config["probability"] == 1.0
    assert ScheduledOutputSampler.from_config(config).mode == "output"
    assert type(model.from_config(model.get_config()).sampler) is ScheduledOutputSampler
