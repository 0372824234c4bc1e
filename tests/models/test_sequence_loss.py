"""sequence_loss and SequenceLoss hold TF Addons' expectations (tensorflow/addons,
tensorflow_addons/seq2seq/tests/loss_test.py): its data, 5 classes, logits[:, t] = t + 0.5 for
every class, targets [[0, 1, 2]] * 2, so every token's cross-entropy is log(5) = 1.60944."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.models.sampling import SequenceLoss, sequence_loss

BATCH, TIME, CLASSES = 2, 3, 5
EXPECTED = 1.60944   # loss_test.py, get_test_data: expected_loss
LOGITS = np.tile((np.arange(TIME) + 0.5)[None, :, None], (BATCH, 1, CLASSES)).astype("float32")
TARGETS = np.tile(np.arange(TIME, dtype="int32"), (BATCH, 1))
TOL = dict(rtol=1e-6, atol=1e-6)   # loss_test.py's tolerances
ONES = np.ones((BATCH, TIME), "float32")
LAST_ZERO = np.array([[1.0, 1.0, 0.0]] * BATCH, "float32")
# TF Addons masks nothing but by the weights; its targets hold class 0, kzoo's pad id.
TFA = dict(pad_id=None)


def expected_shape(average_t, average_b):
    return {(True, True): (), (False, True): (TIME,), (True, False): (BATCH,),
            (False, False): (BATCH, TIME)}[(average_t, average_b)]


@pytest.mark.parametrize("average_t, average_b", itertools.product([True, False], repeat=2))
def test_averages_as_tfa_test_sequence_loss_and_test_sequence_loss_class(average_t, average_b):
    shape = expected_shape(average_t, average_b)
    flags = dict(average_across_timesteps=average_t, average_across_batch=average_b)
    for weights, expected in ((ONES, EXPECTED), (0 * ONES, 0.0)):   # zero_weights: 0, not NaN
        loss = sequence_loss(TARGETS, LOGITS, weights, **TFA, **flags)
        np.testing.assert_allclose(loss, np.full(shape, expected), **TOL)
    loss = SequenceLoss(**TFA, **flags, sum_over_timesteps=False, sum_over_batch=False)
    np.testing.assert_allclose(loss(TARGETS, LOGITS, ONES), np.full(shape, EXPECTED),
                               **TOL)


def test_sums_as_tfa_test_sum_reduction_and_test_weighted_sum_reduction():
    def sums(weights, sum_t, sum_b):
        return SequenceLoss(**TFA, average_across_timesteps=False, average_across_batch=False,
                            sum_over_timesteps=sum_t, sum_over_batch=sum_b)(
            TARGETS, LOGITS, weights)

    for weights in (ONES, LAST_ZERO):
        np.testing.assert_allclose(sums(weights, True, True), EXPECTED, **TOL)
        # per step: the steps of weight 0 give 0 (test_weighted_sum_reduction)
        np.testing.assert_allclose(sums(weights, False, True), EXPECTED * weights[0],
                                   **TOL)
        np.testing.assert_allclose(sums(weights, True, False), [EXPECTED] * BATCH, **TOL)
        np.testing.assert_allclose(sums(weights, False, False), EXPECTED * weights,
                                   **TOL)


def test_the_class_equals_the_function_with_sample_weight_and_a_pad_id():
    # The class gave 0.8047 here: Keras weighted its terms but not the count they divide.
    for pad_id in (-1, 0):
        function = sequence_loss(TARGETS, LOGITS, LAST_ZERO, pad_id=pad_id)
        method = SequenceLoss(pad_id=pad_id)(TARGETS, LOGITS, sample_weight=LAST_ZERO)
        np.testing.assert_allclose(method, function, **TOL)
        np.testing.assert_allclose(method, EXPECTED, rtol=1e-5)
    # Weights that are not 0/1: averages divide by their sum, sums by their non-zero count.
    weights = np.array([[2.0, 1.0, 0.0]] * BATCH, "float32")
    np.testing.assert_allclose(SequenceLoss(**TFA)(TARGETS, LOGITS, weights), EXPECTED,
                               rtol=1e-5)
    summed = SequenceLoss(**TFA, average_across_timesteps=False, average_across_batch=False,
                          sum_over_timesteps=True, sum_over_batch=True)
    np.testing.assert_allclose(summed(TARGETS, LOGITS, weights), EXPECTED * 1.5, rtol=1e-5)


def test_ambiguous_order_and_both_reductions_of_an_axis_are_refused():
    for flags in (dict(average_across_batch=True, sum_over_timesteps=True,
                       average_across_timesteps=False),   # loss_test.py test_ambiguous_order
                  dict(sum_over_batch=True, average_across_batch=False)):
        with pytest.raises(ValueError, match="ambiguous order"):
            SequenceLoss(**flags)
        with pytest.raises(ValueError, match="ambiguous order"):
            sequence_loss(TARGETS, LOGITS, **flags)
    with pytest.raises(ValueError, match="cannot both be True"):
        sequence_loss(TARGETS, LOGITS, sum_over_timesteps=True)   # with the default average
    with pytest.raises(ValueError, match="weights"):
        sequence_loss(TARGETS, LOGITS, ONES[0])


def test_one_hot_targets_softmax_loss_function_and_probabilities():
    one_hot = np.eye(CLASSES, dtype="float32")[TARGETS]
    np.testing.assert_allclose(sequence_loss(one_hot, LOGITS, ONES, **TFA), EXPECTED, **TOL)
    calls = []

    def doubled(labels, logits):
        calls.append((labels.shape, logits.shape))
        return 2.0 * tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)

    np.testing.assert_allclose(sequence_loss(TARGETS, LOGITS, ONES, **TFA,
                                             softmax_loss_function=doubled), 2 * EXPECTED,
                               **TOL)
    assert calls == [((BATCH * TIME,), (BATCH * TIME, CLASSES))]
    probabilities = tf.nn.softmax(LOGITS)
    np.testing.assert_allclose(SequenceLoss(**TFA, from_logits=False)(TARGETS, probabilities),
                               EXPECTED, rtol=1e-5)
    config = SequenceLoss(pad_id=None, sum_over_batch=True, average_across_batch=False,
                          average_across_timesteps=False).get_config()
    restored = SequenceLoss.from_config(config)
    assert (restored.pad_id, restored.sum_over_batch, restored.average_across_batch) == \
        (None, True, False)


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_keras_fit_reports_tfa_test_keras_compatibility_loss():
    # A model without weights that always outputs the test's logits; one-hot targets and
    # temporal sample weights, as loss_test.py test_keras_compatibility.
    inputs = keras.Input((TIME,))
    outputs = keras.layers.Lambda(lambda x: tf.tile(LOGITS[:1], [tf.shape(x)[0], 1, 1]),
                                  output_shape=(TIME, CLASSES))(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss=SequenceLoss(**TFA))
    history = model.fit(np.ones((BATCH, TIME), "float32"), np.eye(CLASSES)[TARGETS],
                        sample_weight=ONES, batch_size=BATCH, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], EXPECTED, **TOL)
