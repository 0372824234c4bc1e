"""kzoo attention layers against NumPy implementations of their equations, plus masks,
serialization, training, TFLite (builtin ops only) and argument errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.layers.attention
from kzoo.layers import (BahdanauAttention, BahdanauMonotonicAttention, LuongAttention,
                         LuongMonotonicAttention)
from kzoo.layers.target import trace_target

BATCH, QUERY_TIME, VALUE_TIME, VALUE_DIM, UNITS = 3, 4, 5, 4, 6

# name -> (factory, query dim). Query and value dims differ wherever the score allows it, so a
# transposed or swapped kernel cannot pass.
CASES = {
    "bahdanau": (lambda: BahdanauAttention(UNITS), 3),
    "bahdanau_normalized": (lambda: BahdanauAttention(UNITS, normalize=True), 3),
    "luong_dot": (lambda: LuongAttention("dot"), VALUE_DIM),
    "luong_general_scaled": (lambda: LuongAttention("general", scale=True), 3),
    "luong_concat": (lambda: LuongAttention("concat", units=UNITS), 3),
    "bahdanau_monotonic": (
        lambda: BahdanauMonotonicAttention(UNITS, normalize=True, score_bias_init=-0.5,
                                           sigmoid_noise=1.0, seed=3), 3),
    "luong_monotonic": (lambda: LuongMonotonicAttention("general", scale=True), 3),
    "luong_monotonic_hard": (lambda: LuongMonotonicAttention("concat", units=UNITS, mode="hard"),
                             3),
}
MONOTONIC = {"bahdanau_monotonic", "luong_monotonic", "luong_monotonic_hard"}


# -- NumPy references ---------------------------------------------------------------------------
def np_additive(q, h, w_query, w_key, v, bias=0.0):
    # q (B, Tq, dq), h (B, Tv, dv) -> (B, Tq, Tv); a loop-free but independent formulation.
    hidden = np.tanh(np.einsum("bid,du->biu", q, w_query)[:, :, None]
                     + np.einsum("bjd,du->bju", h, w_key)[:, None] + bias)
    return np.einsum("biju,u->bij", hidden, v)


def np_scores(case, q, h, w):
    if case.startswith("bahdanau"):
        v, bias = w["v"], 0.0
        if "g" in w:
            v, bias = w["g"] * w["v"] / np.linalg.norm(w["v"]), w["bias"]
        scores = np_additive(q, h, w["query_kernel"], w["key_kernel"], v, bias)
    elif case == "luong_dot":
        scores = np.einsum("bid,bjd->bij", q, h)
    elif "kernel" in w:  # general: sᵀ W h with kernel = Wᵀ
        scores = np.einsum("bid,de,bje->bij", q, w["kernel"].T, h)
    else:  # concat: vᵀ tanh(W [s; h]) with W = [query_kernel; key_kernel]ᵀ
        hidden = np.tanh(np.einsum("biju,ku->bijk", np.concatenate(
            [np.broadcast_to(q[:, :, None], q.shape[:2] + (h.shape[1], q.shape[2])),
             np.broadcast_to(h[:, None], (h.shape[0], q.shape[1]) + h.shape[1:])], -1),
            np.concatenate([w["query_kernel"], w["key_kernel"]], 0).T))
        scores = np.einsum("bijk,k->bij", hidden, w["v"])
    if "g" in w and not case.startswith("bahdanau"):
        scores = w["g"] * scores
    return scores


def np_softmax_weights(scores, mask):
    weights = np.zeros_like(scores)
    for b in range(scores.shape[0]):
        keep = mask[b]
        if keep.any():
            e = np.exp(scores[b][:, keep] - scores[b][:, keep].max(-1, keepdims=True))
            weights[b][:, keep] = e / e.sum(-1, keepdims=True)
    return weights


def np_monotonic_step(p, previous, mode):
    """One alignment from p_choose (B, Tv): tfa's closed forms."""
    if mode == "hard":
        p = p * np.cumsum(previous, -1)
    not_chosen_before = np.cumprod(np.concatenate([np.ones_like(p[:, :1]), 1 - p[:, :-1]], -1),
                                   -1)
    if mode == "hard":
        return p * not_chosen_before
    return p * not_chosen_before * np.cumsum(previous / np.clip(not_chosen_before, 1e-10, 1), -1)


def np_monotonic_recurrence(p, previous):
    """The recurrence "parallel" solves: q_j = (1 - p_{j-1}) q_{j-1} + α_prev_j, α_j = p_j q_j."""
    alignment = np.zeros_like(p)
    q = np.zeros(p.shape[0])
    for j in range(p.shape[1]):
        q = (1 - p[:, j - 1]) * q + previous[:, j] if j else previous[:, 0]
        alignment[:, j] = p[:, j] * q
    return alignment


def np_monotonic_weights(scores, mask, previous, mode):
    if mode == "hard":
        p = (scores > 0).astype(np.float64)
    else:
        p = 1 / (1 + np.exp(-scores))
    p = p * mask[:, None]
    steps = []
    for i in range(scores.shape[1]):
        previous = np_monotonic_step(p[:, i], previous, mode)
        steps.append(previous)
    return np.stack(steps, 1)


def np_attention(case, layer, q, h, mask, previous=None):
    """context, weights for a rank-3 query, in float64."""
    w = {v.name: np.asarray(v, np.float64) for v in layer.weights}
    q, h = q.astype(np.float64), h.astype(np.float64)
    scores = np_scores(case, q, h, w)
    if case in MONOTONIC:
        if previous is None:
            previous = np.zeros(h.shape[:2])
            previous[:, 0] = 1
        weights = np_monotonic_weights(scores + w["score_bias"], mask, previous, layer.mode)
    else:
        weights = np_softmax_weights(scores, mask)
    return weights @ h, weights


# -- fixtures -----------------------------------------------------------------------------------
def make_layer(case, rng):
    factory, query_dim = CASES[case]
    layer = factory()
    layer.build((None, None, query_dim), (None, None, VALUE_DIM))
    for variable in layer.weights:
        value = rng.normal(size=variable.shape)
        if variable.name == "g":
            value = np.abs(value) + 0.5
        variable.assign(value.astype("float32"))
    return layer, query_dim


def make_inputs(rng, query_dim):
    query = rng.normal(size=(BATCH, QUERY_TIME, query_dim)).astype("float32")
    values = rng.normal(size=(BATCH, VALUE_TIME, VALUE_DIM)).astype("float32")
    # Row 0 full, row 1 padded after 3 keys, row 2 fully masked.
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2, [False] * 5])
    return query, values, mask


MASKS = {"no_mask": lambda m: np.ones_like(m), "mask": lambda m: m}


# -- numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("masking", sorted(MASKS))
def test_equals_numpy_for_both_query_ranks(case, masking, rng):
    layer, query_dim = make_layer(case, rng)
    query, values, mask = make_inputs(rng, query_dim)
    mask = MASKS[masking](mask)
    expected_context, expected_weights = np_attention(case, layer, query, values, mask)

    context, weights = layer(query, values, mask=mask)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5, rtol=0)
    np.testing.assert_allclose(context, expected_context, atol=1e-5, rtol=0)

    # A rank-2 query is one decoder step: the first query step (from the default alignment).
    context, weights = layer(query[:, 0], values, mask=mask, keys=layer.project_keys(values))
    assert context.shape == (BATCH, VALUE_DIM) and weights.shape == (BATCH, VALUE_TIME)
    np.testing.assert_allclose(weights, expected_weights[:, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(context, expected_context[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_masked_keys_get_exactly_zero_and_full_mask_gives_zeros(case, rng):
    layer, query_dim = make_layer(case, rng)
    query, values, mask = make_inputs(rng, query_dim)
    # Huge values at the masked keys: any leak would show in the context.
    values[~mask] = 1e6
    query_var = tf.Variable(query)
    with tf.GradientTape() as tape:
        context, weights = layer(query_var, values, mask=mask)
        loss = tf.reduce_sum(context)
    weights, context = np.asarray(weights), np.asarray(context)
    assert np.all(weights[~np.broadcast_to(mask[:, None], weights.shape)] == 0.0)
    assert np.all(weights[2] == 0.0) and np.all(context[2] == 0.0)
    gradient = tape.gradient(loss, query_var)  # None for "hard": a step function of the query
    assert np.all(np.isfinite(context)) and (gradient is None or np.all(np.isfinite(gradient)))
    sums = weights[:2].sum(-1)
    if case in MONOTONIC:
        assert np.all(sums <= 1 + 1e-6)  # the rest is the probability of never stopping
    else:
        np.testing.assert_allclose(sums, 1.0, atol=1e-6)

    # One decoder step (a rank-2 query) takes its own path: the same exact zeros.
    context, weights = (np.asarray(x) for x in layer(query[:, 0], values, mask=mask))
    assert np.all(weights[~mask] == 0.0)
    assert np.all(weights[2] == 0.0) and np.all(context[2] == 0.0)
    assert np.all(np.isfinite(context))


@pytest.mark.parametrize("case", sorted(MONOTONIC))
def test_monotonic_chains_alignments_and_takes_previous_alignment(case, rng):
    layer, query_dim = make_layer(case, rng)
    query, values, mask = make_inputs(rng, query_dim)
    if layer.mode == "hard":
        previous = np.eye(VALUE_TIME)[rng.integers(0, 3, size=BATCH)]
    else:
        previous = rng.dirichlet(np.ones(VALUE_TIME), size=BATCH)
    previous = previous.astype("float32")
    _, expected = np_attention(case, layer, query, values, mask, previous)
    _, weights = layer(query, values, mask=mask, previous_alignment=previous)
    np.testing.assert_allclose(weights, expected, atol=1e-5, rtol=0)
    # Stepping the decoder by hand, feeding each alignment back, gives the same as one call.
    keys = layer.project_keys(values)
    alignment = previous
    for i in range(QUERY_TIME):
        _, alignment = layer(query[:, i], values, mask=mask, keys=keys,
                             previous_alignment=alignment)
        np.testing.assert_allclose(alignment, weights[:, i], atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", ["bahdanau_monotonic", "luong_monotonic"])
def test_parallel_mode_solves_the_alignment_recurrence(case, rng):
    layer, query_dim = make_layer(case, rng)
    for variable in layer.weights:  # moderate scores: tfa's 1e-10 clip must not bind here
        variable.assign(variable * 0.3)
    query, values, mask = make_inputs(rng, query_dim)
    previous = rng.dirichlet(np.ones(VALUE_TIME), size=BATCH)
    _, weights = layer(query, values, mask=mask, previous_alignment=previous.astype("float32"))
    w = {v.name: np.asarray(v, np.float64) for v in layer.weights}
    scores = np_scores(case, query.astype(np.float64), values.astype(np.float64), w)
    p = mask[:, None] / (1 + np.exp(-(scores + w["score_bias"])))
    for i in range(QUERY_TIME):
        previous = np_monotonic_recurrence(p[:, i], previous)
        np.testing.assert_allclose(weights[:, i], previous, atol=1e-5, rtol=0)


def test_monotonic_noise_only_in_training(rng):
    layer, query_dim = make_layer("bahdanau_monotonic", rng)
    query, values, _ = make_inputs(rng, query_dim)
    inference = [np.asarray(layer(query, values)[1]) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = np.asarray(layer(query, values, training=True)[1])
    assert np.abs(training - inference[0]).max() > 1e-3


def test_uses_keras_propagated_values_mask_and_keeps_query_mask(rng):
    layer, query_dim = make_layer("bahdanau", rng)
    tokens = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 0, 0], [0, 0, 0, 0, 0]])
    embedding = keras.layers.Embedding(9, VALUE_DIM, mask_zero=True)
    values = embedding(tokens)
    query = keras.layers.Embedding(9, query_dim, mask_zero=True)(tokens[:, :QUERY_TIME])
    context, weights = layer(query, values)
    expected = layer(query, values, mask=tokens != 0)
    np.testing.assert_array_equal(weights, expected[1])
    np.testing.assert_array_equal(weights[1, :, 3:], 0.0)
    # The outputs follow the query's time axis and carry its mask, not the values' mask.
    np.testing.assert_array_equal(context._keras_mask, tokens[:, :QUERY_TIME] != 0)


# -- serialization and training -----------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_get_config_from_config(case, rng):
    layer, query_dim = make_layer(case, rng)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build((None, None, query_dim), (None, None, VALUE_DIM))
    clone.set_weights(layer.get_weights())
    query, values, mask = make_inputs(rng, query_dim)
    for a, b in zip(clone(query, values, mask=mask), layer(query, values, mask=mask)):
        np.testing.assert_array_equal(a, b)


def every_attention_model():
    """One functional model using every case (one model keeps the fit and save tests fast):
    query (B, Tq, 4), values (B, Tv, 4), mask (B, Tv) -> logits (B, Tq, 2) and each case's
    weights."""
    query = keras.Input((None, VALUE_DIM), name="query")
    values = keras.Input((None, VALUE_DIM), name="values")
    mask = keras.Input((None,), dtype="bool", name="mask")
    contexts, outputs = [], {}
    for case in sorted(CASES):
        context, outputs[case] = CASES[case][0]()(query, values, mask=mask)
        contexts.append(context)
    outputs["logits"] = keras.layers.Dense(2)(keras.layers.Concatenate()(contexts))
    return keras.Model([query, values, mask], outputs)


def model_inputs(rng):
    query, values, mask = make_inputs(rng, VALUE_DIM)
    return [query, values, mask]


def test_keras_file_round_trip(rng, tmp_path):
    model = every_attention_model()
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: the layers are registered
    inputs = model_inputs(rng)
    expected, got = model.predict(inputs, verbose=0), loaded.predict(inputs, verbose=0)
    assert sorted(got) == sorted(expected) == sorted([*CASES, "logits"])
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")  # the "hard" case
def test_trains_in_fit(rng):
    model = every_attention_model()
    attention = {layer.name: layer for layer in model.layers
                 if isinstance(layer, kzoo.layers.attention.BaseAttention)}
    assert len(attention) == len(CASES)
    before = {name: [np.asarray(w) for w in layer.trainable_weights]
              for name, layer in attention.items()}
    targets = rng.normal(size=(BATCH, QUERY_TIME, 2)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss={"logits": "mse"})
    history = model.fit(model_inputs(rng), {"logits": targets}, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for name, layer in attention.items():
        changed = [not np.allclose(a, w) for a, w in zip(before[name], layer.trainable_weights)]
        if getattr(layer, "mode", None) == "hard":
            # Hard monotonic attention is a step function of its scores: no gradient reaches them.
            assert not any(changed), name
        else:  # every weight moved ("dot" has none)
            assert all(changed), name


# -- TFLite -------------------------------------------------------------------------------------
def run_litert(model_content, inputs):
    """Outputs (in the function's output order) of a converted model at the inputs' shapes."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    details = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    for name, value in inputs.items():
        interpreter.resize_tensor_input(details[name], value.shape)
    interpreter.allocate_tensors()
    for name, value in inputs.items():
        interpreter.set_tensor(details[name], value)
    interpreter.invoke()
    outputs = sorted(interpreter.get_output_details(),
                     key=lambda d: int(d["name"].partition("_")[2] or 0))  # Identity, Identity_1..
    return [interpreter.get_tensor(d["index"]) for d in outputs]


@pytest.mark.parametrize("case", sorted(CASES))
def test_converts_to_builtin_tflite_and_matches(case, rng):
    layer, query_dim = make_layer(case, rng)

    @tf.function(input_signature=[
        tf.TensorSpec((None, query_dim), tf.float32, name="step_query"),
        tf.TensorSpec((None, None, query_dim), tf.float32, name="query"),
        tf.TensorSpec((None, None, VALUE_DIM), tf.float32, name="values"),
        tf.TensorSpec((None, None), tf.bool, name="mask"),
    ])
    def attend(step_query, query, values, mask):
        return (*layer(step_query, values, mask=mask), *layer(query, values, mask=mask))

    with trace_target("tflite"):
        concrete = attend.get_concrete_function()
    # No trackable object: with one, the converter goes through a SavedModel of the Keras layer
    # and the file reads uninitialized variables in LiteRT; this way the weights are frozen.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    model_content = converter.convert()

    # Two shapes through the same file: batch and both time axes are dynamic.
    for batch, value_time in ((BATCH, VALUE_TIME), (2, 7)):
        query = rng.normal(size=(batch, QUERY_TIME + 1, query_dim)).astype("float32")
        values = rng.normal(size=(batch, value_time, VALUE_DIM)).astype("float32")
        mask = np.arange(value_time)[None] < rng.integers(0, value_time + 1, size=(batch, 1))
        got = run_litert(model_content, {"step_query": query[:, 0], "query": query,
                                         "values": values, "mask": mask})
        expected = (*layer(query[:, 0], values, mask=mask), *layer(query, values, mask=mask))
        for name, a, b in zip(("step_context", "step_weights", "context", "weights"), got,
                              expected):
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0, err_msg=name)


# -- probability_fn (tfa's probability_fn and hardmax) ------------------------------------------
@keras.saving.register_keras_serializable(package="kzoo_tests")
def sharpened_softmax(scores):
    return tf.nn.softmax(2 * scores)


@keras.saving.register_keras_serializable(package="kzoo_tests")
def half_previous(scores, previous_alignment):
    return 0.5 * tf.nn.softmax(scores) + 0.5 * previous_alignment


@pytest.mark.parametrize("case", ["bahdanau", "luong_general_scaled"])
def test_probability_fn_hardmax_and_callables(case, rng):
    layer, query_dim = make_layer(case, rng)
    query, values, mask = make_inputs(rng, query_dim)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    _, softmax = layer(query, values, mask=mask)
    softmax = softmax.numpy()

    def clone(probability_fn):
        config = {**layer.get_config(), "probability_fn": probability_fn}
        other = type(layer).from_config(config)
        other.build((None, None, query_dim), (None, None, VALUE_DIM))
        other.set_weights(layer.get_weights())
        return other

    # hardmax: all weight on the key softmax weighs most; the context is that key's value.
    context, weights = clone("hardmax")(query, values, mask=mask)
    best = softmax.argmax(-1)
    np.testing.assert_array_equal(weights, np.eye(VALUE_TIME)[best])
    np.testing.assert_allclose(context, np.take_along_axis(values[:, None], best[..., None, None],
                                                           2)[:, :, 0], atol=1e-6)
    # A callable of the (masked) scores: softmax(2 s) = w² / Σ w² over the unmasked keys.
    sharp = clone(sharpened_softmax)
    np.testing.assert_allclose(sharp(query, values, mask=mask)[1],
                               softmax ** 2 / (softmax ** 2).sum(-1, keepdims=True), atol=1e-5)
    assert type(layer).from_config(sharp.get_config()).probability_fn is sharpened_softmax
    # A callable of (scores, previous_alignment), one query step at a time.
    blend = clone(half_previous)
    assert blend.uses_previous_alignment and not sharp.uses_previous_alignment
    previous = rng.uniform(size=(BATCH, VALUE_TIME)).astype("float32")
    np.testing.assert_allclose(
        blend(query[:, 0], values, mask=mask, previous_alignment=previous)[1],
        np.where(mask, 0.5 * softmax[:, 0] + 0.5 * previous, 0), atol=1e-5)
    with pytest.raises(ValueError, match="one query step"):
        blend(query, values, mask=mask)
    with pytest.raises(ValueError, match="cannot be saved in a config"):
        clone(lambda scores: scores).get_config()
    config = {**sharp.get_config(), "probability_fn": {**sharp.get_config()["probability_fn"],
                                                       "config": "kzoo_tests>missing"}}
    # (Keras' from_config re-raises the constructor's error as a TypeError quoting it.)
    with pytest.raises((TypeError, ValueError), match="cannot load `probability_fn`"):
        type(layer).from_config(config)


def test_hardmax_attention_converts_to_builtin_tflite(rng):
    layer = LuongAttention("general", probability_fn="hardmax")
    layer.build((None, 3), (None, None, VALUE_DIM))

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32, name="query"),
                                  tf.TensorSpec((None, None, VALUE_DIM), tf.float32,
                                                name="values"),
                                  tf.TensorSpec((None, None), tf.bool, name="mask")])
    def attend(query, values, mask):
        return layer(query, values, mask=mask)

    with trace_target("tflite"):
        concrete = attend.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    query = rng.normal(size=(2, 3)).astype("float32")
    values = rng.normal(size=(2, 6, VALUE_DIM)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 0, 0, 0, 0]], bool)
    got = run_litert(converter.convert(), {"query": query, "values": values, "mask": mask})
    for a, b in zip(got, layer(query, values, mask=mask)):
        np.testing.assert_allclose(a, b, atol=1e-6)


# -- errors -------------------------------------------------------------------------------------
def test_bad_arguments_give_clear_errors(rng):
    with pytest.raises(ValueError, match=r"LuongAttention: `score` must be one of "
                                         r"\('dot', 'general', 'concat'\), got 'cosine'"):
        LuongAttention("cosine")
    with pytest.raises(ValueError, match="score='concat' needs `units`"):
        LuongAttention("concat")
    with pytest.raises(ValueError, match="`units` is used only by score='concat'"):
        LuongAttention("dot", units=4)
    with pytest.raises(ValueError, match="BahdanauAttention: `units` must be a positive integer"):
        BahdanauAttention(0)
    with pytest.raises(ValueError, match=r"`mode` must be one of \('recursive', 'parallel', "
                                         r"'hard'\)"):
        BahdanauMonotonicAttention(4, mode="soft")
    with pytest.raises(ValueError, match="`probability_fn` must be one of"):
        LuongAttention(probability_fn="sparsemax")
    with pytest.raises(ValueError, match="takes no `probability_fn`"):
        BahdanauMonotonicAttention(4, probability_fn="hardmax")
    with pytest.raises(ValueError, match="`sigmoid_noise` must be a float >= 0"):
        LuongMonotonicAttention(sigmoid_noise=-1.0)

    values = rng.normal(size=(2, 5, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"expects `query` of shape \(batch, features\) or "
                                         r"\(batch, query_time, features\), got shape \(4,\)"):
        BahdanauAttention(3)(np.ones(4, "float32"), values)
    with pytest.raises(ValueError, match=r"expects `values` of shape \(batch, value_time, "
                                         r"features\), got shape \(2, 4\)"):
        BahdanauAttention(3)(np.ones((2, 4), "float32"), values[:, 0])
    with pytest.raises(ValueError, match="score='dot' needs `query` and `values` with the same "
                                         "last dimension, got 3 and 4"):
        LuongAttention("dot")(np.ones((2, 3), "float32"), values)
    layer = LuongAttention("general")
    layer(np.ones((2, 3), "float32"), values)
    with pytest.raises(ValueError, match="was built for `query` with last dimension 3"):
        layer(np.ones((2, 6), "float32"), values)
    with pytest.raises(ValueError, match=r"expects `mask` of shape \(batch, value_time\)"):
        layer(np.ones((2, 3), "float32"), values, mask=np.ones((2, 5, 1), bool))
    with pytest.raises(ValueError, match=r"expects `previous_alignment` of shape "
                                         r"\(batch, value_time\)"):
        LuongMonotonicAttention()(np.ones((2, 3), "float32"), values,
                                  previous_alignment=np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="is not built"):
        BahdanauAttention(3).project_keys(values)
