"""Choice rules of the decode loop: the counter-based draws, TokenSampler's cuts and
temperature against the exact distributions, sampling decode against greedy decode, and a
choice rule of one's own (tfa's SampleEmbeddingSampler and CustomSampler)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.models import TokenSampler, greedy_choice, greedy_search
from kzoo.models.token_choice import uniform_draws

PROBS = np.array([0.5, 0.3, 0.15, 0.05])
ROWS = 4000


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(2)
    model = kzoo.build("seq2seq_attention", units=4, source_vocab_size=12,
                       target_vocab_size=12, source_embedding_dim=4, target_embedding_dim=4)
    # Peaked distributions, as a trained model's (an untrained one's are nearly uniform).
    kernel = model.output_layer.kernel
    kernel.assign(kernel * 20.0)
    return model


SOURCES = np.array([[5, 6, 7, 8], [9, 10, 0, 0], [4, 4, 11, 0]], np.int32)


def test_uniform_draws_are_a_fixed_function_of_seed_step_and_row():
    # Golden values: a change here changes every seeded draw a served model makes.
    np.testing.assert_array_equal(uniform_draws(7, 0, 3).numpy(),
                                  np.array([2045689, 16389034, 7746484]) / 2**24)
    draws = uniform_draws(3, 5, 20000).numpy()
    counts = np.histogram(draws, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 2000) < 150), counts
    by_step = np.array([uniform_draws(3, t, 1).numpy()[0] for t in range(60)])
    assert abs(np.corrcoef(by_step[:-1], by_step[1:])[0, 1]) < 0.2
    assert not np.array_equal(uniform_draws(4, 5, 8), draws[:8])


@pytest.mark.parametrize("kwargs, expected", [
    ({}, PROBS),
    ({"top_k": 2}, [0.625, 0.375, 0, 0]),
    ({"top_p": 0.5}, [1, 0, 0, 0]),                  # the most likely token alone reaches 0.5
    ({"top_p": 0.7}, [0.625, 0.375, 0, 0]),           # 0.5 + 0.3 >= 0.7
    ({"top_p": 0.81}, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
    ({"top_p": 0.81, "top_k": 3}, [0.625, 0.375, 0, 0]),   # within the top 3: .526 + .316
    ({"temperature": 0.5}, PROBS**2 / np.sum(PROBS**2)),
])
def test_token_sampler_draws_from_the_restricted_distribution(kwargs, expected):
    log_probs = np.log(np.tile(PROBS, [ROWS, 1])).astype("float32")
    drawn = TokenSampler(seed=3, **kwargs)(log_probs, step=tf.constant(0)).numpy()
    frequencies = np.bincount(drawn, minlength=4) / ROWS
    np.testing.assert_array_equal(frequencies > 0, np.asarray(expected) > 0)
    np.testing.assert_allclose(frequencies, expected, atol=0.03)


def test_sampling_decode_is_seeded_and_becomes_greedy_at_top_k_1_or_low_temperature(model):
    greedy = model.generate(SOURCES, max_length=6)
    first = model.generate(SOURCES, method="sample", seed=5, max_length=6)
    np.testing.assert_array_equal(first["tokens"],
                                  model.generate(SOURCES, method="sample", seed=5,
                                                 max_length=6)["tokens"])
    assert not np.array_equal(first["tokens"], model.generate(
        SOURCES, method="sample", seed=6, max_length=6)["tokens"])
    for kwargs in ({"top_k": 1}, {"temperature": 1e-3}):
        sampled = model.generate(SOURCES, method="sample", seed=5, max_length=6, **kwargs)
        np.testing.assert_array_equal(sampled["tokens"], greedy["tokens"])
        np.testing.assert_allclose(sampled["scores"], greedy["scores"], rtol=1e-5)
    # A choice rule of one's own runs in the same loop: the argmax rule is greedy search.
    custom = model.generate(SOURCES, method=greedy_choice, max_length=6)
    np.testing.assert_array_equal(custom["tokens"], greedy["tokens"])
    np.testing.assert_allclose(custom["scores"], greedy["scores"], rtol=1e-5)


def test_sampled_scores_are_the_models_log_probabilities_of_the_drawn_tokens(model):
    out = model.generate(SOURCES, method="sample", seed=9, temperature=1.5, max_length=5)
    tokens, lengths = out["tokens"].numpy(), out["lengths"].numpy()
    target_in = np.concatenate([np.full((3, 1), model.start_id), tokens[:, :-1]], 1)
    log_probs = tf.nn.log_softmax(model((SOURCES, target_in))).numpy()
    picked = np.take_along_axis(log_probs, tokens[..., None], -1)[..., 0]
    emitted = np.arange(5)[None, :] < lengths[:, None]
    np.testing.assert_allclose(out["scores"], (picked * emitted).sum(1), atol=1e-4)


def test_a_custom_choice_rule_drives_greedy_search():
    # A bigram toy over 5 ids (0 padding, 1 start, 2 end): the second most likely token.
    table = tf.math.log(tf.constant([[.2, .2, .2, .2, .2],
                                     [.01, .01, .08, .4, .5],
                                     [.2, .2, .2, .2, .2],
                                     [.01, .01, .9, .04, .04],
                                     [.01, .01, .29, .4, .29]]))

    def step_fn(token_ids, states):
        return tf.gather(table, token_ids), states, None

    def second_best(log_probs, step):
        return tf.math.top_k(log_probs, 2).indices[:, 1]

    out = greedy_search(step_fn, [], batch_size=1, start_id=1, end_id=2, max_length=4,
                        choose=second_best)
    # 1 -> 3 (0.4, after 4) -> 4 or 3 (0.04 tie: top_k takes the lower index, 3) ...
    np.testing.assert_array_equal(out["tokens"], [[3, 3, 3, 3]])
    np.testing.assert_allclose(out["scores"], [np.log(0.4) + 3 * np.log(0.04)], rtol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    ({"temperature": 0}, "temperature"), ({"temperature": -1.0}, "temperature"),
    ({"top_k": -1}, "top_k"), ({"top_k": 1.5}, "top_k"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.2}, "top_p"), ({"seed": "one"}, "seed"),
])
def test_bad_sampling_arguments_are_refused_by_name(model, kwargs, name):
    with pytest.raises(ValueError, match=f"generate: `{name}`"):
        model.generate(SOURCES, method="sample", **kwargs)
    with pytest.raises(ValueError, match=f"TokenSampler: `{name}`"):
        TokenSampler(**kwargs)
    with pytest.raises(ValueError, match="`method` must be one of"):
        model.generate(SOURCES, method="nucleus")
