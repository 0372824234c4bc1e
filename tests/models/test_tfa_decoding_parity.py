"""kzoo's searches hold the expectations of TF Addons' decoding tests (tensorflow/addons,
tensorflow_addons/seq2seq/tests/: beam_search_ops_test.py, beam_search_decoder_test.py,
basic_decoder_test.py); each test names the TF Addons test whose hard-coded values it reuses.
TF Addons' arrays are time-major (max_time, batch, beam), as gather_tree takes them."""

import numpy as np
import pytest
import tensorflow as tf

from kzoo.models import decoding

START, END = 1, 2


def time_major(batch_major):
    return np.transpose(np.asarray(batch_major), [1, 0, 2])


# beam_search_ops_test.py, test_gather_tree_one / test_bad_parent_values_on_cpu
ONE_STEP_IDS = time_major([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, -1, -1]]])
ONE_PARENTS = time_major([[[0, 0, 0], [0, 1, 1], [2, 1, 2], [-1, -1, -1]]])


def test_gather_tree_as_tfa_beam_search_ops_test():
    beams = decoding.gather_tree(ONE_STEP_IDS, ONE_PARENTS, max_sequence_lengths=[3],
                                 end_token=10)
    np.testing.assert_array_equal(beams, time_major([[[2, 2, 2], [6, 5, 6], [7, 8, 9],
                                                      [10, 10, 10]]]))
    bad = ONE_PARENTS.copy()
    bad[1, 0, 1] = -1      # bad parent in beam 1 at time 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="parent id"):
        decoding.gather_tree(ONE_STEP_IDS, bad, max_sequence_lengths=[3], end_token=10)
    # beam_search_decoder_test.py, test_gather_tree: two batch rows
    predicted = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                          [[2, 3, 4], [5, 6, 7], [8, 9, 10]]]).transpose([1, 0, 2])
    parents = np.array([[[0, 0, 0], [0, 1, 1], [2, 1, 2]],
                        [[0, 0, 0], [1, 2, 0], [2, 1, 1]]]).transpose([1, 0, 2])
    expected = np.array([[[2, 2, 2], [6, 5, 6], [7, 8, 9]],
                         [[2, 4, 4], [7, 6, 6], [8, 9, 10]]]).transpose([1, 0, 2])
    np.testing.assert_array_equal(decoding.gather_tree(predicted, parents, [3, 3], 11), expected)


def test_gather_tree_batch_properties_as_tfa_test_gather_tree_batch():
    batch, beams, max_time, end = 10, 15, 8, 5
    lengths = [0, 1, 2, 4, 7, 8, 9, 10, 11, 0]
    rng = np.random.default_rng(0)
    step_ids = rng.integers(0, end + 1, size=(max_time, batch, beams))
    parents = rng.integers(0, beams - 1, size=(max_time, batch, beams))
    out = decoding.gather_tree(step_ids, parents, lengths, end).numpy()
    assert out.shape == (max_time, batch, beams)
    for b in range(batch):
        assert (out[lengths[b]:, b] == end).all()        # past a row's length: end tokens
        for j in range(beams):
            line = out[:, b, j]
            if end in line:       # everything after the first end token is the end token
                assert (line[np.argmax(line == end):] == end).all()
                assert (line >= 0).all()


# beam_search_decoder_test.py, _test_gather_tree_from_array
ARRAY = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 0]],
                  [[2, 3, 4], [5, 6, 7], [8, 9, 10], [11, 12, 0]]],
                 "float32").transpose([1, 0, 2])
ARRAY_PARENTS = np.array([[[0, 0, 0], [0, 1, 1], [2, 1, 2], [-1, -1, -1]],
                          [[0, 0, 0], [1, 1, 0], [2, 0, 1], [0, 1, 0]]]).transpose([1, 0, 2])
ARRAY_EXPECTED = np.array([[[2, 2, 2], [6, 5, 6], [7, 8, 9], [0, 0, 0]],
                           [[2, 3, 2], [7, 5, 7], [8, 9, 8], [11, 12, 0]]],
                          "float32").transpose([1, 0, 2])
ARRAY_LENGTHS = [[3, 3, 3], [4, 4, 3]]


@pytest.mark.parametrize("depth, merged", [(0, False), (1, False), (1, True), (2, False)])
def test_gather_tree_from_array_as_tfa(depth, merged):
    array, expected = ARRAY, ARRAY_EXPECTED
    if merged:   # test_gather_tree_from_array_1d_with_merged_batch_beam
        array, expected = array.reshape(4, 6), expected.reshape(4, 6)
    for _ in range(depth):   # _tile_in_depth: tensor and tensor + 1 along new last axes
        array, expected = (np.stack([x, x + 1], -1) for x in (array, expected))
    np.testing.assert_array_equal(
        decoding.gather_tree_from_array(array, ARRAY_PARENTS, ARRAY_LENGTHS), expected)


def test_gather_tree_from_array_complex_trajectory_as_tfa():
    array = np.array([[[25, 12, 114, 89, 97]], [[9, 91, 64, 11, 162]], [[34, 34, 34, 34, 34]],
                      [[2, 4, 2, 2, 4]], [[2, 3, 6, 2, 2]], [[2, 2, 2, 3, 2]],
                      [[2, 2, 2, 2, 2]]], "float32")[..., None]
    parents = np.array([[[0, 0, 0, 0, 0]], [[0, 0, 0, 0, 0]], [[0, 1, 2, 3, 4]],
                        [[0, 0, 1, 2, 1]], [[0, 1, 1, 2, 3]], [[0, 1, 3, 1, 2]],
                        [[0, 1, 2, 3, 4]]])
    expected = np.array([[[25, 25, 25, 25, 25]], [[9, 9, 91, 9, 9]], [[34, 34, 34, 34, 34]],
                         [[2, 4, 2, 4, 4]], [[2, 3, 6, 3, 6]], [[2, 2, 2, 3, 2]],
                         [[2, 2, 2, 2, 2]]], "float32")[..., None]
    np.testing.assert_array_equal(
        decoding.gather_tree_from_array(array, parents, [[4, 6, 4, 7, 6]]), expected)


def test_gather_tree_in_a_graph_without_tensor_lists():
    # Builtin ops only: TFLite's converter lowers no TensorList (beam_search traces back its
    # histories with the same loop).
    fn = tf.function(lambda s, p: decoding.gather_tree(s, p, [3], 10)).get_concrete_function(
        tf.TensorSpec([None, None, None], tf.int32), tf.TensorSpec([None, None, None], tf.int32))
    graph = fn.graph.as_graph_def()
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function
                                        for n in f.node_def}
    assert "While" in ops or "StatelessWhile" in ops
    assert not {op for op in ops if op.startswith("TensorList")}, ops
    np.testing.assert_array_equal(fn(ONE_STEP_IDS.astype("int32"), ONE_PARENTS.astype("int32")),
                                  decoding.gather_tree(ONE_STEP_IDS, ONE_PARENTS, [3], 10))


# beam_search_decoder_test.py, test_beam_step / test_large_beam_step: their step logits over
# 5 tokens of beams (batch 2). TF Addons' token i is kzoo's TOKEN[i] (its end token 0 is
# kzoo's END; 0 is kzoo's padding).
TOKEN = [END, 3, 4, 5, 6]


def tfa_logits(shape):
    logits = np.full(shape, 0.0001, "float32")
    logits[0, 0, 2], logits[0, 0, 3], logits[0, 1, 3], logits[0, 1, 4] = 1.9, 2.1, 3.1, 0.9
    logits[1, 0, 1], logits[1, 1, 2], logits[1, 2, 2], logits[1, 2, 3] = 0.5, 2.7, 10.0, 0.2
    return logits


def test_beam_step_as_tfa_test_beam_step():
    # TF Addons' state: 3 beams of log-probability log(1/3) each and length 2, none finished.
    # Here: step 1 takes 7, 8 or 9 (1/3 each), step 2 extends each by one sure token (10, 11,
    # 12), and step 3 reads TF Addons' logits of beam j after token 10 + j.
    vocab, k, neg = 13, 3, -1e9
    table = np.full((2, vocab, vocab), neg, "float32")      # (batch row, previous token, next)
    table[:, START, 7:10] = 0.0
    for j in range(k):
        table[:, 7 + j, 10 + j] = 0.0
        table[:, 10 + j, TOKEN] = tfa_logits((2, k, 5))[:, j]
    table = tf.constant(table)

    def step_fn(token_ids, states):
        return tf.gather_nd(table, tf.stack([states[0], token_ids], 1)), states, None

    rows = decoding.tile_batch(tf.constant([0, 1]), k)
    out = decoding.beam_search(step_fn, [rows], batch_size=2, beam_width=k, start_id=START,
                               end_id=END, max_length=3, length_penalty_weight=0.6)
    tokens = out["beam_tokens"].numpy()
    np.testing.assert_array_equal(tokens[..., 2], np.array(TOKEN)[[[3, 3, 2], [2, 2, 1]]])
    np.testing.assert_array_equal(tokens[..., 1] - 10, [[1, 0, 0], [2, 1, 0]])   # parent_ids
    np.testing.assert_array_equal(out["lengths"], [[3, 3, 3], [3, 3, 3]])
    log_probs = tf.nn.log_softmax(tfa_logits((2, k, 5))).numpy()
    third = np.log(1 / 3)
    expected = [[third + log_probs[0, 1, 3], third + log_probs[0, 0, 3],
                 third + log_probs[0, 0, 2]],
                [third + log_probs[1, 2, 2], third + log_probs[1, 1, 2],
                 third + log_probs[1, 0, 1]]]
    np.testing.assert_allclose(out["log_probs"], expected, rtol=1e-6)


def test_large_beam_step_as_tfa_padded_beams_are_minus_inf_and_length_0():
    # 8 beams, 5 tokens: at the first step only the 5 extensions of the one live hypothesis
    # exist; the 3 beams left over are empty (the issue saw -1e9 and a length). The tokens
    # are TF Addons' own ids here (kzoo's ids 0, 1 emitted as tokens), its end token 0 is 4.
    logits = tf.constant(tfa_logits((2, 8, 5))[:, 0])   # only beam 0 is alive

    def step_fn(token_ids, states):
        return tf.gather(logits, states[0]), states, None

    rows = decoding.tile_batch(tf.constant([0, 1]), 8)
    for alpha in (0.6, 0.0):    # with and without the length penalty's state
        out = decoding.beam_search(step_fn, [rows], batch_size=2, beam_width=8, start_id=START,
                                   end_id=4, max_length=1, length_penalty_weight=alpha)
        tokens = out["beam_tokens"].numpy()[..., 0]
        assert (tokens[0, 0], tokens[0, 1], tokens[1, 0]) == (3, 2, 1)
        np.testing.assert_array_equal(out["log_probs"][:, -3:], np.full((2, 3), -np.inf))
        assert (out["log_probs"].numpy()[:, :-3] > -np.inf).all()
        np.testing.assert_array_equal(out["beam_scores"][:, -3:], np.full((2, 3), -np.inf))
        np.testing.assert_array_equal(out["lengths"][:, -3:], np.zeros((2, 3)))
        assert (out["lengths"].numpy()[:, :-3] > 0).all()


def constant_step(log_probs):
    table = tf.math.log(tf.constant([log_probs], tf.float32))

    def step_fn(token_ids, states):
        return tf.tile(table, [tf.shape(token_ids)[0], 1]), states, None

    return step_fn


def test_length_penalty_ranks_an_ending_candidate_with_the_length_before_it():
    # Beam width 1, end token 1, every step's probabilities [1e-6, .45, .40, .15], α = 1: TF
    # Addons ranks ending now as log(.45) / lp(0) = -0.958 against log(.40) / lp(1) = -0.916,
    # and continues with 2; counting the end at once (log(.45) / lp(1) = -0.799) ends.
    step_fn = constant_step([1e-6, 0.45, 0.40, 0.15])
    picks = {rule: decoding.beam_search(step_fn, [], batch_size=1, beam_width=1, start_id=0,
                                        end_id=1, max_length=1, length_penalty_weight=1.0,
                                        penalty_rule=rule)["tokens"].numpy()[0, 0]
             for rule in decoding.PENALTY_RULES}
    assert picks == {"gnmt": 2, "stepwise": 1}
    with pytest.raises(ValueError, match="penalty_rule"):
        decoding.beam_search(step_fn, [], batch_size=1, beam_width=1, start_id=0, end_id=1,
                             max_length=1, penalty_rule="tfa")


def test_tile_batch_tiles_each_tensor_of_a_nested_structure():
    h, c = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
    tiled = decoding.tile_batch([h, c], 2)
    assert isinstance(tiled, list) and len(tiled) == 2       # not one (4, 2, 3) tensor
    np.testing.assert_array_equal(tiled[0], h[[0, 0, 1, 1]])
    np.testing.assert_array_equal(tiled[1], c[[0, 0, 1, 1]])
    nested = decoding.tile_batch({"state": (h, None), "lengths": np.array([3, 1])}, 3)
    np.testing.assert_array_equal(nested["lengths"], [3, 3, 3, 1, 1, 1])
    assert nested["state"][1] is None and nested["state"][0].shape == (6, 3)
    with pytest.raises(ValueError, match="batch dimension"):
        decoding.tile_batch([np.float32(1.0)], 2)


# A decoder over 8 ids whose next token is successor[previous] (logit 5), attending to the
# previous token's position (one-hot over 8 "source" positions).
SUCCESSOR = tf.constant([0, 3, 0, 4, 5, 2, 5, 2])


def successor_step(token_ids, states):
    return 5.0 * tf.one_hot(tf.gather(SUCCESSOR, token_ids), 8), states, \
        tf.one_hot(token_ids, 8)


def test_per_row_start_tokens_as_tfa_test_step_with_greedy_embedding_helper():
    # Row 0 starts from 1 (-> 3 4 5 2), row 1 from 6 (-> 5 2): each token the argmax.
    starts = np.array([1, 6], "int32")
    greedy = decoding.greedy_search(successor_step, [], batch_size=2, start_id=starts,
                                    end_id=END, max_length=5)
    np.testing.assert_array_equal(greedy["tokens"], [[3, 4, 5, 2, 0], [5, 2, 0, 0, 0]])
    np.testing.assert_array_equal(greedy["lengths"], [4, 2])
    beam = decoding.beam_search(successor_step, [], batch_size=2, beam_width=2,
                                start_id=tf.constant(starts), end_id=END, max_length=5,
                                alignment_size=8, alignment_history=True,
                                output_all_scores=True)
    np.testing.assert_array_equal(beam["tokens"], greedy["tokens"])
    # The best beams' alignment history: the token each step read, traced back.
    np.testing.assert_array_equal(beam["beam_attention"][:, 0].numpy().argmax(-1),
                                  [[1, 3, 4, 5, 0], [6, 5, 0, 0, 0]])
    np.testing.assert_array_equal(beam["attention"], beam["beam_attention"][:, 0])
    # output_all_scores (TF Addons' test_beam_search_decoder shapes: (batch, time, beam,
    # vocab) there, beams before time here): every step's score of each hypothesis' prefix,
    # and the scores of all its extensions, the chosen token's being the step score.
    assert beam["all_scores"].shape == (2, 2, 5, 8) and beam["step_scores"].shape == (2, 2, 5)
    chosen = np.take_along_axis(beam["all_scores"].numpy()[:, 0],
                                beam["beam_tokens"].numpy()[:, 0, :, None], -1)[..., 0]
    np.testing.assert_allclose(chosen[0, :4], beam["step_scores"][0, 0, :4], rtol=1e-6)
    np.testing.assert_allclose(beam["step_scores"][:, 0, -1], beam["scores"], rtol=1e-6)
    with pytest.raises(ValueError, match="start_id"):
        decoding.greedy_search(successor_step, [], batch_size=2, start_id=[[1, 6]], end_id=END,
                               max_length=2)


@pytest.mark.slow
def test_beam_search_and_gather_tree_in_a_tflite_file_equal_tensorflow():
    # Builtin ops only (no TensorList): 8 beams over 5 tokens, per-row start tokens, the
    # alignment history traced back, and gather_tree of beam_search_ops_test.py's arrays.
    from kzoo.export import lite

    table = np.log(np.array([[.05, .05, .1, .5, .3], [.05, .05, .5, .2, .2], [.2] * 5,
                             [.05, .05, .6, .1, .2], [.05, .05, .3, .3, .3]], "float32"))

    def search(start_ids, max_length, step_ids, parent_ids):
        def step_fn(ids, states):
            return tf.gather(tf.constant(table), ids), states, tf.one_hot(ids, 5)

        out = decoding.beam_search(step_fn, [], batch_size=tf.shape(start_ids)[0], beam_width=8,
                                   start_id=start_ids, end_id=END, max_length=max_length,
                                   alignment_size=5, alignment_history=True,
                                   length_penalty_weight=0.6)
        out = {key: out[key] for key in ("beam_tokens", "log_probs", "lengths",
                                         "beam_attention")}
        out["tree"] = decoding.gather_tree(step_ids, parent_ids, [3], 10)
        return out

    content = lite.convert(search, [tf.TensorSpec([None], tf.int32),
                                    tf.TensorSpec([], tf.int32),
                                    tf.TensorSpec([None, None, None], tf.int32),
                                    tf.TensorSpec([None, None, None], tf.int32)])
    assert not any(op.startswith("FLEX") or "TensorList" in op for op in lite.op_names(content))
    for max_length in (1, 4):      # 1: the last 3 beams are empty
        inputs = [np.array([1, 3], "int32"), np.array(max_length, "int32"),
                  ONE_STEP_IDS.astype("int32"), ONE_PARENTS.astype("int32")]
        expected = search(*[tf.constant(x) for x in inputs])
        # LiteRT returns the outputs in the order of their sorted names.
        got = dict(zip(sorted(expected), lite.run(content, *inputs)))
        for key in ("beam_tokens", "lengths", "beam_attention", "tree"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        log_probs = expected["log_probs"].numpy()
        finite = np.isfinite(log_probs)
        assert finite.all() == (max_length == 4)
        np.testing.assert_allclose(got["log_probs"][finite], log_probs[finite], atol=1e-5)
        # -inf, or the lowest float32 where the converter stored it so
        assert (got["log_probs"][~finite] <= np.finfo("float32").min).all()
