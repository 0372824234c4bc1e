"""Seq2seq: generate against a hand-written step loop, beam vs greedy, padding, end token and
max_length, teacher forcing vs decode_step, scheduled sampling, save/load and learning."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import kzoo
from kzoo.models.seq2seq import Seq2Seq

START, END = 1, 2
SMALL = dict(source_vocab_size=13, target_vocab_size=13, source_embedding_dim=8,
             target_embedding_dim=8, units=16)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return kzoo.build("seq2seq_attention", bidirectional=True, **SMALL)


def sources():
    # Rows of different lengths, 0-padded.
    return np.array([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [10, 11, 12, 0, 0]], "int32")


def stepwise_greedy(model, source_ids, max_length):
    """Greedy decoding written out: encode once, then one decode_step per token in Python."""
    memory, keys, memory_mask, states = model.encode(source_ids)
    batch = source_ids.shape[0]
    ids = np.full([batch], START, "int32")
    tokens = np.zeros([batch, max_length], "int32")
    attention = np.zeros([batch, max_length, source_ids.shape[1]], "float32")
    scores = np.zeros([batch])
    finished = np.zeros([batch], bool)
    for t in range(max_length):
        logits, states, weights = model.decode_step(ids, states, memory, keys, memory_mask)
        log_probs = tf.nn.log_softmax(logits).numpy()
        ids = log_probs.argmax(-1).astype("int32")
        for b in range(batch):
            if not finished[b]:
                tokens[b, t] = ids[b]
                attention[b, t] = weights[b]
                scores[b] += log_probs[b, ids[b]]
        finished |= ids == END
    return tokens, scores, attention


def test_greedy_generate_equals_a_step_by_step_decode(model):
    source_ids = sources()
    out = model.generate(source_ids, max_length=6)
    tokens, scores, attention = stepwise_greedy(model, source_ids, 6)
    np.testing.assert_array_equal(out["tokens"], tokens)
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-5)
    np.testing.assert_allclose(out["attention"], attention, atol=1e-6)
    # Padded source positions get no attention.
    assert np.all(out["attention"].numpy()[1, :, 2:] == 0)


def test_teacher_forced_logits_equal_decode_steps(model):
    # The training forward pass and decode_step are the same step with the same weights.
    source_ids = sources()
    target_in = np.array([[START, 5, 6, 7], [START, 8, 0, 0], [START, 9, 10, 11]], "int32")
    logits = model((source_ids, target_in)).numpy()
    memory, keys, memory_mask, states = model.encode(source_ids)
    for t in range(target_in.shape[1]):
        step_logits, states, _ = model.decode_step(target_in[:, t], states, memory, keys,
                                                   memory_mask)
        valid = target_in[:, t] != 0
        np.testing.assert_allclose(logits[valid, t], step_logits.numpy()[valid], atol=1e-5)


def test_logits_carry_the_target_padding_mask(model):
    target_in = np.array([[START, 5, 0], [START, 6, 7], [START, 0, 0]], "int32")
    logits = model((sources(), target_in))
    np.testing.assert_array_equal(logits._keras_mask, target_in != 0)


@pytest.mark.parametrize("name, config", [
    ("seq2seq_rnn", {}), ("seq2seq_gru", dict(bidirectional=True)), ("seq2seq_lstm", {}),
    ("seq2seq_attention", dict(bidirectional=True)),
    ("seq2seq_attention", dict(input_feeding=False, attention_layer_size=5)),
    ("seq2seq_attention", dict(monotonic=True, attention_normalize=True)),
    ("seq2seq_luong", dict(luong_score="concat", attention_scale=True)),
    ("seq2seq_luong", dict(luong_score="dot", monotonic=True)),
])
def test_search_step_equals_decode_step(name, config):
    # The search loops run search_step (weights read once, the input projection of every token
    # in a table); it must be decode_step's step, state for state.
    keras.utils.set_random_seed(7)
    model = kzoo.build(name, **SMALL, **config)
    memory, keys, memory_mask, states = model.encode(sources())
    step = model.search_step(memory, keys, memory_mask)
    fast_states = states
    ids = np.full([3], START, "int32")
    for _ in range(4):
        logits, states, alignments = model.decode_step(ids, states, memory, keys, memory_mask)
        fast_logits, fast_states, fast_alignments = step(tf.constant(ids), fast_states)
        np.testing.assert_allclose(fast_logits, logits, atol=1e-5)
        for fast, slow in zip(fast_states, states):
            np.testing.assert_allclose(fast, slow, atol=1e-5)
        if fast_alignments is not None:
            np.testing.assert_allclose(fast_alignments, alignments, atol=1e-6)
        ids = logits.numpy().argmax(-1).astype("int32")


def test_zero_penalties_are_left_out_and_nonzero_ones_applied(model):
    # A Python 0 leaves a penalty out of the graph; 0 given as a tensor takes the penalized
    # path, which must give the same beams; a real penalty changes the scores.
    plain = model.generate(sources(), max_length=5, method="beam", beam_width=3)
    traced = model.search(tf.constant(sources()), tf.constant(5), 3, tf.constant(0.0),
                          tf.constant(0.0))
    np.testing.assert_array_equal(plain["beam_tokens"], traced["beam_tokens"])
    np.testing.assert_allclose(plain["beam_scores"], traced["beam_scores"], rtol=1e-5)
    np.testing.assert_array_equal(plain["lengths"], traced["lengths"])
    penalized = model.generate(sources(), max_length=5, method="beam", beam_width=3,
                               length_penalty=1.0)
    lp = ((5.0 + penalized["lengths"].numpy()) / 6.0) ** 1.0
    np.testing.assert_allclose(penalized["beam_scores"], penalized["log_probs"] / lp, rtol=1e-5)
    with pytest.raises(ValueError, match="length_penalty"):
        model.generate(sources(), method="beam", length_penalty="long")


def test_beam_width_one_equals_greedy(model):
    greedy = model.generate(sources(), max_length=6)
    beam = model.generate(sources(), max_length=6, method="beam", beam_width=1)
    np.testing.assert_array_equal(beam["tokens"], greedy["tokens"])
    np.testing.assert_allclose(beam["scores"], greedy["scores"], rtol=1e-5)


def test_padded_batch_decodes_like_one_source_at_a_time(model):
    source_ids = sources()
    greedy = model.generate(source_ids, max_length=5)
    beam = model.generate(source_ids, max_length=5, method="beam", beam_width=3)
    for b, row in enumerate(source_ids):
        alone = row[row != 0][None]
        one = model.generate(alone, max_length=5)
        np.testing.assert_array_equal(greedy["tokens"][b], one["tokens"][0])
        np.testing.assert_allclose(greedy["scores"][b], one["scores"][0], rtol=1e-5)
        np.testing.assert_allclose(greedy["attention"][b, :, :alone.shape[1]],
                                   one["attention"][0], atol=1e-6)
        one_beam = model.generate(alone, max_length=5, method="beam", beam_width=3)
        np.testing.assert_array_equal(beam["beam_tokens"][b], one_beam["beam_tokens"][0])
        np.testing.assert_allclose(beam["beam_scores"][b], one_beam["beam_scores"][0],
                                   rtol=1e-5)


def with_output_bias(model, token):
    """The same model, but the output layer predicts ``token`` at every step."""
    kernel, bias = model.output_layer.get_weights()
    clone = Seq2Seq.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    bias = np.zeros_like(bias)
    bias[token] = 100.0
    clone.output_layer.set_weights([kernel, bias])
    return clone


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_end_token_and_max_length_are_respected(model, method):
    ends = with_output_bias(model, END)
    out = ends.generate(sources(), max_length=4, method=method, beam_width=2)
    np.testing.assert_array_equal(out["tokens"], [[END, 0, 0, 0]] * 3)
    never_ends = with_output_bias(model, 7)
    out = never_ends.generate(sources(), max_length=4, method=method, beam_width=2)
    np.testing.assert_array_equal(out["tokens"], np.full([3, 4], 7))
    # Default max_length: 2 * source length + 2.
    assert never_ends.generate(sources()[:, :3], method=method)["tokens"].shape == (3, 8)


def test_scheduled_sampling_with_probability_one_feeds_back_the_argmax():
    keras.utils.set_random_seed(5)
    model = kzoo.build("seq2seq_luong", luong_score="dot", scheduled_sampling=1.0, **SMALL)
    source_ids = sources()
    target_in = np.array([[START, 12, 12, 12]] * 3, "int32")
    logits = model((source_ids, target_in), training=True).numpy()
    # Every step after the first reads the model's own previous argmax, whatever target_in says.
    memory, keys, memory_mask, states = model.encode(source_ids)
    ids = np.full([3], START, "int32")
    for t in range(4):
        step_logits, states, _ = model.decode_step(ids, states, memory, keys, memory_mask)
        np.testing.assert_allclose(logits[:, t], step_logits, atol=1e-5)
        ids = step_logits.numpy().argmax(-1).astype("int32")
    # Not in training: teacher forcing.
    teacher = model((source_ids, target_in), training=False).numpy()
    assert not np.allclose(teacher[:, 1:], logits[:, 1:])
    model.sampler.probability.assign(0.0)
    np.testing.assert_allclose(model((source_ids, target_in), training=True), teacher,
                               atol=1e-6)


@pytest.mark.parametrize("name, config", [
    ("seq2seq_attention", dict(num_layers=2, residual=True)),
    ("seq2seq_gru", dict(bidirectional=True, merge_mode="sum")),
    ("seq2seq_luong", dict(luong_score="concat", attention_scale=True, monotonic=True)),
])
def test_keras_save_load_gives_equal_outputs_and_generate(tmp_path, name, config):
    model = kzoo.build(name, **SMALL, **config)
    (source_ids, target_in), _ = kzoo.models.example_batch(name, {**SMALL, **config},
                                                           batch_size=3)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is Seq2Seq and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded((source_ids, target_in)), model((source_ids, target_in)),
                               atol=1e-6)
    for method in ("greedy", "beam"):
        a = model.generate(source_ids, max_length=4, method=method, beam_width=2)
        b = loaded.generate(source_ids, max_length=4, method=method, beam_width=2)
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5)


@pytest.mark.parametrize("config, match", [
    (dict(num_layers=0), "num_layers"), (dict(units=-1), "units"),
    (dict(merge_mode="max"), "merge_mode"), (dict(source_vocab_size=0), "source_vocab_size"),
    (dict(target_vocab_size=0), "target_vocab_size"), (dict(start_id=0), "start_id"),
    (dict(end_id=1), "end_id"), (dict(scheduled_sampling=1.5), "scheduled_sampling"),
    (dict(bogus=1), "bogus"),
])
def test_bad_config_raises_a_clear_error(config, match):
    with pytest.raises(ValueError, match=match):
        kzoo.build("seq2seq_attention", **config)


def test_bad_cell_and_attention_name_the_argument():
    with pytest.raises(ValueError, match="cell.*lstmm.*did you mean 'lstm'"):
        Seq2Seq(cell="lstmm")
    with pytest.raises(ValueError, match="attention"):
        Seq2Seq(attention="bahdanu")
    with pytest.raises(ValueError, match="method"):
        Seq2Seq(**SMALL).generate(sources(), method="nucleus")


def reversal_data(n, rng, shortest=4, longest=6):
    """Digits 3..12 in, the same digits reversed out; lengths vary, so rows are padded."""
    source = np.zeros((n, longest), "int32")
    target_in = np.zeros((n, longest + 1), "int32")
    target_out = np.zeros((n, longest + 1), "int32")
    lengths = rng.integers(shortest, longest + 1, n)
    for i, length in enumerate(lengths):
        digits = rng.integers(3, 13, length)
        source[i, :length] = digits
        target_in[i, 0], target_in[i, 1:length + 1] = START, digits[::-1]
        target_out[i, :length], target_out[i, length] = digits[::-1], END
    return source, target_in, target_out, lengths


def test_seq2seq_attention_learns_to_reverse_digits_with_anti_diagonal_attention():
    keras.utils.set_random_seed(0)
    source, target_in, target_out, _ = reversal_data(2560, np.random.default_rng(0))
    model = kzoo.build("seq2seq_attention", source_vocab_size=13, target_vocab_size=13,
                       source_embedding_dim=16, target_embedding_dim=16, units=64)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  **kzoo.models.compile_args("seq2seq_attention"))
    model.fit((source, target_in), target_out, batch_size=64, epochs=3, verbose=0)

    source, _, target_out, lengths = reversal_data(200, np.random.default_rng(1))
    out = model.generate(source, max_length=target_out.shape[1])
    tokens, attention = out["tokens"].numpy(), out["attention"].numpy()
    not_pad = target_out != 0
    assert (tokens == target_out)[not_pad].mean() >= 0.99
    # Output step t (reading source position L-1-t) attends most to that position.
    on_anti_diagonal = [attention[i, t].argmax() == length - 1 - t
                        for i, length in enumerate(lengths) for t in range(length)]
    assert np.mean(on_anti_diagonal) >= 0.9


def fit_data(rng, rows=16, source_time=6, target_time=7, vocab=20):
    return (rng.integers(3, vocab, (rows, source_time)).astype("int32"),
            rng.integers(3, vocab, (rows, target_time)).astype("int32"),
            rng.integers(3, vocab, (rows, target_time)).astype("int32"))


def compiled_model(**compile_kwargs):
    model = kzoo.build("seq2seq_attention", source_vocab_size=20, target_vocab_size=20, units=8,
                       source_embedding_dim=4, target_embedding_dim=4)
    model.compile(optimizer="adam", **{**kzoo.models.compile_args("seq2seq_attention"),
                                       **compile_kwargs})
    return model


def test_fit_takes_both_keras_forms_of_numpy_arrays(rng):
    # Source and target lengths differ (6 and 7): the nested tuple was once read as x alone.
    source, target_in, target_out = fit_data(rng)
    model = compiled_model()
    nested = model.fit(((source, target_in), target_out), batch_size=8, epochs=1, verbose=0)
    split = model.fit((source, target_in), target_out, batch_size=8, epochs=1, verbose=0,
                      validation_data=((source, target_in), target_out))
    assert len(nested.history["loss"]) == len(split.history["loss"]) == 1
    assert np.isfinite(split.history["val_loss"][0])
    assert set(model.evaluate(((source, target_in), target_out), verbose=0,
                              return_dict=True)) == {"loss", "token_accuracy"}


@pytest.mark.parametrize("args, match", [
    (lambda s, ti, to: ((s, ti),), "takes x=\\(source_ids, target_in_ids\\) and y="),
    (lambda s, ti, to: ((s, ti, to),), "takes x="),
    (lambda s, ti, to: ((s, ti), to[:, :6]), "target_in_ids \\(16, 7\\) and target_out_ids "
                                             "\\(16, 6\\) must have the same time length"),
    (lambda s, ti, to: ((s[:8], ti), to), "one batch size"),
    (lambda s, ti, to: ((s, ti.astype("float32")), to), "`target_in_ids` must be integer"),
    (lambda s, ti, to: ((s[:, :, None], ti), to), "`source_ids` must be integer token ids of "
                                                  "shape \\(batch, time\\)"),
])
def test_bad_fit_data_is_refused_and_the_model_still_fits(rng, args, match):
    source, target_in, target_out = fit_data(rng)
    model = compiled_model()
    with pytest.raises(ValueError, match=match):
        model.fit(*args(source, target_in, target_out), epochs=1, verbose=0)
    model.fit((source, target_in), target_out, epochs=1, verbose=0)


def test_a_fit_that_fails_while_tracing_leaves_the_model_ready_for_the_next(rng):
    # Keras' cached train function, half traced, would refuse the next fit ("Creating variables
    # on a non-first call to a function decorated with tf.function").
    calls, loss = [], kzoo.models.compile_args("seq2seq_attention")["loss"]

    def loss_failing_once(y_true, y_pred):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a loss that fails once")
        return loss(y_true, y_pred)

    source, target_in, target_out = fit_data(rng)
    model = compiled_model(loss=loss_failing_once)
    with pytest.raises(RuntimeError, match="fails once"):
        model.fit((source, target_in), target_out, epochs=1, verbose=0)
    history = model.fit((source, target_in), target_out, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def word_to_char_model(**config):
    from kzoo.layers.text import TokenVectorizer

    vocabularies = {"source": TokenVectorizer(["one", "two", "twenty-three"]),
                    "target": TokenVectorizer(list("abc"), level="char")}
    return kzoo.build("seq2seq_attention", source_vocab_size=7, target_vocab_size=7, units=4,
                      source_embedding_dim=4, target_embedding_dim=4,
                      vocabularies={**vocabularies, **config})


def test_the_default_decode_length_fits_the_levels_the_model_carries():
    from kzoo.layers.text import TokenVectorizer

    model = word_to_char_model()
    assert model.levels == ("word", "char")
    source_ids = model.text_to_ids(["twenty-three one", "two"])      # 2 words, 16 characters
    assert int(model.source_units(source_ids)) == 16
    for method in ("greedy", "beam"):
        assert model.generate(source_ids, method=method)["tokens"].shape == (2, 2 * 16 + 2)
    words = word_to_char_model(target=TokenVectorizer(["a", "b", "c"]))
    assert words.levels == ("word", "word")
    assert words.generate(source_ids)["tokens"].shape == (2, 2 * 2 + 2)
    # An explicit max_length wins.
    assert model.generate(source_ids, max_length=3)["tokens"].shape == (2, 3)


def test_translate_warns_naming_the_unknown_tokens():
    from kzoo.models.seq2seq import UnknownTokensWarning

    model = word_to_char_model()
    with pytest.warns(UnknownTokensWarning, match="'banana' in 'banana one'; 'x', 'y' in 'x y'"):
        outputs = model.translate(["banana one", "two", "x y"])
    assert len(outputs) == 3
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.translate(["twenty-three one", "two"])


def test_an_overly_long_source_is_refused():
    model = word_to_char_model()
    # 1200 words of 12 characters: over the 4999 characters whose default decode length
    # (2 L + 2) fills decoding.MAX_DECODE_LENGTH.
    with pytest.raises(ValueError, match="too long: at most 4999 characters of source text "
                                         "\\(this one has 15599\\)"):
        model.translate(" ".join(["twenty-three"] * 1200))
    long_ids = np.full([1, 5000], 4, "int32")
    plain = kzoo.build("seq2seq_rnn", source_vocab_size=6, target_vocab_size=6, units=4,
                       source_embedding_dim=4, target_embedding_dim=4)
    with pytest.raises(ValueError, match="at most 4999 source tokens \\(this one has 5000\\)"):
        plain.generate(long_ids, max_length=5)
    assert plain.generate(long_ids[:, :4999], max_length=2)["tokens"].shape == (1, 2)


def test_beam_generate_returns_the_best_hypothesis_attention(model):
    greedy = model.generate(sources(), max_length=6)
    beam = model.generate(sources(), max_length=6, method="beam", beam_width=1)
    np.testing.assert_allclose(beam["attention"], greedy["attention"], atol=1e-6)
    wide = model.generate(sources(), max_length=6, method="beam", beam_width=3)
    assert wide["attention"].shape == (3, 6, 5)
    # Each emitted token's alignment sums to 1 over the source; nothing after the end.
    emitted = np.arange(6)[None] < wide["lengths"].numpy()[:, :1]
    np.testing.assert_allclose(wide["attention"].numpy().sum(-1), emitted.astype("float32"),
                               atol=1e-5)
