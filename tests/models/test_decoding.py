"""Greedy and beam search on hand-built decoders whose step log-probabilities the test controls."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kzoo.models import decoding

START, END = 1, 2
VOCAB = 6


def bigram_step(table):
    """A decoder whose next-token distribution depends only on the previous token."""
    log_table = tf.constant(np.log(np.asarray(table, "float64")), tf.float32)

    def step_fn(token_ids, states):
        return tf.gather(log_table, token_ids), states, None

    return step_fn


def table_from(rows):
    """Rows {prev: {token: p}}; every other token gets 1e-6 and rows are renormalized."""
    table = np.full((VOCAB, VOCAB), 1e-6)
    for prev, probs in rows.items():
        for token, p in probs.items():
            table[prev, token] = p
    return table / table.sum(1, keepdims=True)


def run_beam(table, batch=1, **kwargs):
    k = kwargs.setdefault("beam_width", 2)
    states = [tf.zeros([batch * k, 1])]
    return decoding.beam_search(bigram_step(table), states, batch_size=batch, start_id=START,
                                end_id=END, **kwargs)


def run_greedy(table, batch=1, max_length=6):
    return decoding.greedy_search(bigram_step(table), [tf.zeros([batch, 1])], batch_size=batch,
                                  start_id=START, end_id=END, max_length=max_length)


# Greedy takes 3 (p=.5) and then ends (p=.3): P = .15. Beam keeps 4 (p=.4), which ends with
# p=.9: P = .36.
GARDEN_PATH = table_from({START: {3: 0.5, 4: 0.4, END: 0.1},
                          3: {END: 0.3, 5: 0.25, 4: 0.25, 3: 0.2},
                          4: {END: 0.9, 5: 0.1},
                          5: {END: 1.0}})


def test_beam_finds_the_sequence_greedy_misses():
    table = GARDEN_PATH
    greedy = run_greedy(table)
    np.testing.assert_array_equal(greedy["tokens"][0], [3, END, 0, 0, 0, 0])
    np.testing.assert_allclose(greedy["scores"][0], np.log(table[START, 3] * table[3, END]),
                               rtol=1e-5)
    beam = run_beam(table, beam_width=2, max_length=6)
    np.testing.assert_array_equal(beam["tokens"][0], [4, END, 0, 0, 0, 0])
    np.testing.assert_allclose(beam["scores"][0], np.log(table[START, 4] * table[4, END]),
                               rtol=1e-5)
    assert beam["scores"][0] > greedy["scores"][0]
    # The runner-up is greedy's hypothesis; both beams are sorted best first.
    np.testing.assert_array_equal(beam["beam_tokens"][0, 1], [3, END, 0, 0, 0, 0])
    np.testing.assert_array_equal(beam["lengths"][0], [2, 2])


def test_beam_width_one_is_greedy():
    table = GARDEN_PATH
    greedy = run_greedy(table, batch=2)
    beam = run_beam(table, batch=2, beam_width=1, max_length=6)
    np.testing.assert_array_equal(beam["tokens"], greedy["tokens"])
    np.testing.assert_allclose(beam["scores"], greedy["scores"], rtol=1e-6)


# Short: [END] with P = .5. Long: [3, 4, END] with P = .45 * .99 * .99 < .5.
SHORT_OR_LONG = table_from({START: {END: 0.5, 3: 0.45, 4: 0.05}, 3: {4: 0.99}, 4: {END: 0.99}})


def gnmt_score(log_prob, length, alpha):
    return log_prob / ((5.0 + length) / 6.0) ** alpha


@pytest.mark.parametrize("rule, counted", [("stepwise", 3), ("gnmt", 2)])
def test_length_penalty_flips_the_choice_exactly_where_the_formula_says(rule, counted):
    # The long hypothesis ends at the last step: "stepwise" counts its end token at once
    # (|Y| = 3), "gnmt" ranks it with the length before the end (|Y| = 2); the short one ended
    # at step 1 and has |Y| = 1 under both by then.
    table = SHORT_OR_LONG
    log_short = np.log(table[START, END])
    log_long = np.log(table[START, 3] * table[3, 4] * table[4, END])
    # score_short = log_short / 1, score_long = log_long / ((5 + counted) / 6)^alpha: equal
    # at alpha*.
    alpha_star = math.log(log_long / log_short) / math.log((5.0 + counted) / 6.0)
    assert 0.3 < alpha_star < 1.2
    for alpha, expected in ((0.0, [END, 0, 0, 0]), (alpha_star - 0.05, [END, 0, 0, 0]),
                            (alpha_star + 0.05, [3, 4, END, 0])):
        out = run_beam(table, beam_width=2, max_length=4, length_penalty_weight=alpha,
                       penalty_rule=rule)
        np.testing.assert_array_equal(out["tokens"][0], expected, err_msg=f"alpha={alpha}")
        scores = sorted([gnmt_score(log_short, 1, alpha), gnmt_score(log_long, counted, alpha)],
                        reverse=True)
        np.testing.assert_allclose(out["beam_scores"][0], scores, rtol=1e-5)
        np.testing.assert_allclose(sorted(out["log_probs"][0].numpy(), reverse=True),
                                   sorted([log_short, log_long], reverse=True), rtol=1e-5)
        np.testing.assert_array_equal(sorted(out["lengths"][0].numpy()), [1, 3])


def test_max_length_cuts_unfinished_hypotheses():
    loop = table_from({START: {3: 1.0}, 3: {3: 1.0}})
    greedy = run_greedy(loop, max_length=4)
    np.testing.assert_array_equal(greedy["tokens"], [[3, 3, 3, 3]])
    np.testing.assert_array_equal(greedy["lengths"], [4])
    beam = run_beam(loop, beam_width=3, max_length=4)
    np.testing.assert_array_equal(beam["tokens"], [[3, 3, 3, 3]])
    assert beam["beam_tokens"].shape == (1, 3, 4)


def test_finished_rows_stop_while_others_run():
    # The state holds a per-row offset added to the previous token: row 0 reads START and ends
    # at once, row 1 reads 3 then 5 and never ends. Row 0 stays finished (0s, score frozen).
    table = table_from({START: {END: 1.0}, 3: {3: 1.0}, 5: {4: 1.0}})
    step = bigram_step(table)
    offsets = tf.constant([[0], [2]], tf.int32)
    out = decoding.greedy_search(lambda ids, s: step(ids + s[0][:, 0], s), [offsets],
                                 batch_size=2, start_id=START, end_id=END, max_length=2)
    np.testing.assert_array_equal(out["tokens"], [[END, 0], [3, 4]])
    np.testing.assert_array_equal(out["lengths"], [1, 2])
    np.testing.assert_allclose(out["scores"], [np.log(table[START, END]),
                                               np.log(table[3, 3] * table[5, 4])], atol=1e-6)


def test_dynamic_batch_and_length_in_one_graph():
    table = GARDEN_PATH

    @tf.function(input_signature=[tf.TensorSpec([None, 1]), tf.TensorSpec([], tf.int32)])
    def search(states, max_length):
        return run_beam_graph(states, max_length)

    def run_beam_graph(states, max_length):
        tiled = decoding.tile_batch(states, 2)
        return decoding.beam_search(bigram_step(table), [tiled], batch_size=tf.shape(states)[0],
                                    beam_width=2, start_id=START, end_id=END,
                                    max_length=max_length)

    for batch, max_length in ((1, 3), (3, 5)):
        out = search(tf.zeros([batch, 1]), tf.constant(max_length))
        assert out["tokens"].shape == (batch, max_length)
        np.testing.assert_array_equal(out["tokens"][:, :2], [[4, END]] * batch)


def test_coverage_penalty_formula_and_tile_batch():
    accumulated = np.array([[0.5, 1.7, 0.0], [0.2, 0.3, 0.9]], "float32")
    expected = 0.4 * np.array([np.log(0.5) + np.log(1.0) + 0.0,
                               np.log(0.2) + np.log(0.3) + np.log(0.9)])
    np.testing.assert_allclose(decoding.coverage_penalty(accumulated, 0.4), expected, rtol=1e-6)
    np.testing.assert_allclose(decoding.length_penalty([1, 3], 0.6),
                               [1.0, (8 / 6) ** 0.6], rtol=1e-6)
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(decoding.tile_batch(x, 2), x[[0, 0, 1, 1]])
    np.testing.assert_array_equal(decoding.tile_batch(np.arange(2), 3), [0, 0, 0, 1, 1, 1])
    # Dimensions unknown at trace time (a memory's source length) keep their size too.
    tile = tf.function(lambda t: decoding.tile_batch(t, 2),
                       input_signature=[tf.TensorSpec([None, None, 2], tf.int64)])
    x = np.arange(12).reshape(2, 3, 2)
    tiled = tile(x)
    np.testing.assert_array_equal(tiled, x[[0, 0, 1, 1]])
    assert tiled.shape == (4, 3, 2)


def test_coverage_penalty_prefers_hypotheses_that_cover_the_source():
    # Two first tokens with equal probability; token 3 attends to source position 0 only,
    # token 4 spreads over both positions. With beta > 0 the covering hypothesis wins.
    # Under "gnmt" the penalty counts once a hypothesis has ended, so a third hypothesis (5,
    # which never ends) keeps the search running a step after [3, END] and [4, END] end.
    table = table_from({START: {3: 0.45, 4: 0.45, 5: 0.09}, 3: {END: 1.0}, 4: {END: 1.0},
                        5: {5: 1.0}})
    log_table = tf.constant(np.log(table), tf.float32)
    attention = tf.constant([[0.5, 0.5]] * 3 + [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])

    def step_fn(token_ids, states):
        return tf.gather(log_table, token_ids), states, tf.gather(attention, token_ids)

    def run(beta, rule, k):
        return decoding.beam_search(step_fn, [tf.zeros([k, 1])], batch_size=1, beam_width=k,
                                    start_id=START, end_id=END, max_length=3,
                                    coverage_penalty_weight=beta, alignment_size=2,
                                    penalty_rule=rule)

    for rule, k in (("stepwise", 2), ("gnmt", 3)):
        out = run(1.0, rule, k)
        np.testing.assert_array_equal(out["tokens"][0], [4, END, 0], err_msg=rule)
        # The winner covered both positions (.5 + .5 each): cp = 0, score = log P; [3, END]
        # covered position 1 by .5 only: cp = log(.5).
        np.testing.assert_allclose(out["beam_scores"][0, :2],
                                   [np.log(table[START, 4]), np.log(table[START, 3] * 0.5)],
                                   rtol=1e-4)


def test_bad_beam_width():
    with pytest.raises(ValueError, match="beam_width"):
        run_beam(GARDEN_PATH, beam_width=0, max_length=3)


# Step 0 keeps [3] (.5) in row 0 and [4] (.4) in row 1; step 1 keeps [3, 3] (.30) in row 0 and
# [4, 5] (.28) in row 1; step 2 ends [4, 5] (.28) into row 0. The winner [4, 5, END] came from
# rows 1, 1, 0.
SWITCHING_ROWS = table_from({START: {3: 0.5, 4: 0.4, END: 0.1}, 3: {3: 0.6, 5: 0.3, END: 0.1},
                             4: {5: 0.7, END: 0.2, 4: 0.1}, 5: {END: 1.0}})


def test_beam_alignment_history_follows_the_best_hypothesis_back():
    # The alignment reveals the token a step read (one-hot over VOCAB positions): only a trace
    # through the winner's parents gives [START, 4, 5]; its final row's line gives [START, 3, 5].
    log_table = tf.constant(np.log(SWITCHING_ROWS), tf.float32)

    def step_fn(token_ids, states):
        return tf.gather(log_table, token_ids), states, tf.one_hot(token_ids, VOCAB)

    for batch in (1, 2):
        out = decoding.beam_search(step_fn, [tf.zeros([batch * 2, 1])], batch_size=batch,
                                   beam_width=2, start_id=START, end_id=END, max_length=5,
                                   alignment_size=VOCAB, alignment_history=True)
        np.testing.assert_array_equal(out["tokens"], [[4, 5, END, 0, 0]] * batch)
        expected = np.zeros([batch, 5, VOCAB], "float32")
        expected[:, 0, START] = expected[:, 1, 4] = expected[:, 2, 5] = 1.0  # 0 after the end
        np.testing.assert_array_equal(out["attention"], expected)
    # Beam width 1 is greedy search, attention included.
    greedy = decoding.greedy_search(step_fn, [tf.zeros([2, 1])], batch_size=2, start_id=START,
                                    end_id=END, max_length=4, alignment_size=VOCAB)
    beam = decoding.beam_search(step_fn, [tf.zeros([2, 1])], batch_size=2, beam_width=1,
                                start_id=START, end_id=END, max_length=4, alignment_size=VOCAB,
                                alignment_history=True)
    np.testing.assert_array_equal(beam["attention"], greedy["attention"])
    with pytest.raises(ValueError, match="alignment_size"):
        run_beam(GARDEN_PATH, max_length=3, alignment_history=True)
