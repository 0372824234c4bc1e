"""The zoo: every registered model trains, round-trips through .keras and matches its info;
bidirectional and deep stacks are checked against hand-written references; bad configs fail
at build time."""

import configparser
import io
import contextlib
import importlib
import inspect
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.models as km
from kzoo.models import arguments, catalog, many_to_many, one_to_many, registry
from kzoo.models.stack import recurrent_stack, validate_common

# Class-name fragments that show a model is made of its registered cell.
CELL_CLASS = {"rnn": "simplernn", "mlp": "dense"}
FAST_OVERRIDES = {"rows": 16, "cols": 16}


def _recurrent_units(layer):
    return getattr(layer, "units", None) or getattr(getattr(layer, "cell", None), "units", None)


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def _as_tensors(inputs):
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else inputs


# -- every registered model -------------------------------------------------------------------
@pytest.mark.parametrize("name", kzoo.list_models())
def test_registered_model_trains_saves_and_matches_info(name, tmp_path):
    info = kzoo.model_info(name)
    model = kzoo.build(name)

    assert isinstance(model, keras.Model) and model.built and model.weights
    assert model.name == name
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        model.summary()
    assert name in summary.getvalue()
    # model_info agrees with the model that was built.
    assert name.startswith(info.pattern) and info.pattern in km.PATTERNS
    assert model.count_params() == catalog.default_parameters(name), \
        f"{name}: kzoo/models/catalog.json is out of date: run `python -m kzoo.models.catalog`"
    layers = _all_layers(model)
    fragment = CELL_CLASS.get(info.cell, info.cell)
    assert any(fragment in type(layer).__name__.lower() for layer in layers), \
        f"{name}: no {info.cell} layer in {[type(layer).__name__ for layer in layers]}"
    if "units" in info.default_config:
        assert info.default_config["units"] in {_recurrent_units(layer) for layer in layers}

    # Train on the defaults, except sizes that only make the step slow (64x64 video frames).
    config = {key: value for key, value in FAST_OVERRIDES.items() if key in info.default_config}
    if config:
        model = kzoo.build(name, **config)
    inputs, targets = km.example_batch(name, config, batch_size=2, seed=0)
    # Eager: tracing the gradient graph of every model costs 4-10 s each on this machine; graph
    # mode is covered by test_graph_mode_fit_of_a_deep_residual_masked_model.
    model.compile(optimizer="adam", run_eagerly=True, **km.compile_args(name, **config))
    loss = model.train_on_batch(inputs, targets)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isfinite(loss), f"{name}: loss {loss}"

    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = model(_as_tensors(inputs), training=False)
    actual = loaded(_as_tensors(inputs), training=False)
    for e, a in zip(tf.nest.flatten(expected), tf.nest.flatten(actual)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-6)


def test_graph_mode_fit_of_a_deep_residual_masked_model():
    name, config = "many_to_many_deep_gru", dict(num_layers=2, residual=True, units=8)
    model = kzoo.build(name, **config)
    model.compile(optimizer="adam", jit_compile=False, **km.compile_args(name, **config))
    inputs, targets = km.example_batch(name, config, batch_size=4)
    history = model.fit(inputs, targets, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict_on_batch(inputs).shape == (4, 5, 17)


# -- bidirectional ----------------------------------------------------------------------------
def test_bidirectional_is_forward_concat_reversed_backward_per_sequence_length():
    model = kzoo.build("many_to_many_bi_lstm", vocab_size=20, embedding_dim=3, units=4)
    ids = np.array([[5, 3, 7, 2, 9], [4, 8, 6, 0, 0]], dtype="int32")
    bi = model.get_layer("rnn_1")
    merged = keras.Model(model.input, bi.output)(ids).numpy()
    assert merged.shape == (2, 5, 8)

    embedding = model.get_layer("inputs_embedding")
    forward = kzoo.layers.LSTM(4, return_sequences=True)
    backward = kzoo.layers.LSTM(4, return_sequences=True)
    forward.build((None, None, 3))
    backward.build((None, None, 3))
    forward.set_weights(bi.forward_layer.get_weights())
    backward.set_weights(bi.backward_layer.get_weights())
    for row, length in enumerate([5, 3]):
        x = embedding(ids[row:row + 1, :length])  # the row without its padding
        # The backward pass is a plain forward layer run over the reversed sequence.
        fw, bw = forward(x).numpy(), backward(x[:, ::-1]).numpy()[:, ::-1]
        np.testing.assert_allclose(merged[row:row + 1, :length], np.concatenate([fw, bw], -1),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge_mode, merge", [("sum", np.add), ("mul", np.multiply),
                                                ("ave", lambda a, b: (a + b) / 2)])
def test_bidirectional_merge_modes(merge_mode, merge, rng):
    inputs = keras.Input((None, 3))
    outputs = recurrent_stack(inputs, cell="gru", units=4, bidirectional=True,
                              merge_mode=merge_mode)
    model = keras.Model(inputs, outputs)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    bi = model.get_layer("rnn_1")
    fw = bi.forward_layer(x).numpy()
    bw = bi.backward_layer(x).numpy()[:, ::-1]  # the backward layer has go_backwards=True
    np.testing.assert_allclose(model(x).numpy(), merge(fw, bw), rtol=1e-5, atol=1e-6)


def test_bidirectional_return_state_gives_forward_then_backward_states(rng):
    inputs = keras.Input((None, 3))
    output, states = recurrent_stack(inputs, cell="lstm", units=4, bidirectional=True,
                                     return_sequences=False, return_state=True)
    model = keras.Model(inputs, [output, *states])
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    output, h_fw, c_fw, h_bw, c_bw = [t.numpy() for t in model(x)]
    np.testing.assert_allclose(output, np.concatenate([h_fw, h_bw], -1), rtol=1e-6)
    bi = model.get_layer("rnn_1")
    reference = kzoo.layers.LSTM(4, return_state=True, go_backwards=True)
    reference(x)
    reference.set_weights(bi.backward_layer.get_weights())
    _, h, c = reference(x)
    np.testing.assert_allclose(h_bw, h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_bw, c.numpy(), rtol=1e-5, atol=1e-6)


# -- deep: layer k feeds layer k+1 -------------------------------------------------------------
def _numpy_simple_rnn(x, kernel, recurrent_kernel, bias):
    h = np.zeros((x.shape[0], kernel.shape[1]))
    outputs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)
        outputs.append(h)
    return np.stack(outputs, 1)


@pytest.mark.parametrize("residual", [False, True])
def test_deep_stack_feeds_each_layer_the_previous_layers_sequence(residual, rng):
    model = kzoo.build("many_to_many_deep_rnn", vocab_size=None, input_dim=3, units=4,
                       residual=residual)
    names = ["rnn_1", "rnn_2", "rnn_3"]
    # Each layer's block output: after its residual Add when there is one (dropout is inert).
    ends = [model.get_layer(f"{n}_residual" if residual else n) for n in names]
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    blocks = [t.numpy() for t in keras.Model(model.input, [e.output for e in ends])(x)]
    assert [b.shape for b in blocks] == [(2, 5, 4)] * 3

    block_input = x
    for name, block in zip(names, blocks):
        expected = _numpy_simple_rnn(block_input, *model.get_layer(name).get_weights())
        if residual:
            shortcut = block_input
            if block_input.shape[-1] != 4:  # layer 1: 3 features -> 4 units, projected
                shortcut = block_input @ model.get_layer(f"{name}_shortcut").get_weights()[0]
            expected = expected + shortcut
        np.testing.assert_allclose(block, expected, rtol=1e-5, atol=1e-5)
        block_input = block
    assert model.get_layer("rnn_2").get_weights()[0].shape == (4, 4)


# -- stateful: truncated BPTT ---------------------------------------------------------------------
def test_stateful_model_continues_across_chunks_and_resets(rng):
    config = dict(vocab_size=None, input_dim=3, units=4, num_layers=2, num_classes=None,
                  output_dim=2)
    stateful = kzoo.build("many_to_many_lstm", stateful=True, batch_size=2, **config)
    whole = kzoo.build("many_to_many_lstm", **config)
    # The stateful model's carried states are non-trainable weights too.
    for target, source in zip(whole.trainable_weights, stateful.trainable_weights):
        target.assign(source)
    series = rng.normal(size=(2, 6, 3)).astype("float32")

    chunks = [stateful(series[:, :3]).numpy(), stateful(series[:, 3:]).numpy()]
    np.testing.assert_allclose(np.concatenate(chunks, 1), whole(series).numpy(), rtol=1e-5,
                               atol=1e-6)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(series[:, 3:]).numpy(), whole(series[:, 3:]).numpy(),
                               rtol=1e-5, atol=1e-6)
    many_to_many.reset_states(stateful)
    np.testing.assert_allclose(stateful(series[:, :3]).numpy(), chunks[0], rtol=1e-6)


def test_stateful_needs_batch_size_and_no_backward_pass():
    with pytest.raises(ValueError, match="batch_size"):
        kzoo.build("many_to_many_lstm", stateful=True)
    with pytest.raises(ValueError, match="bidirectional"):
        kzoo.build("many_to_many_bi_lstm", stateful=True, batch_size=2)


# -- Jordan: teacher forcing in training, own predictions at inference -------------------------
def test_jordan_teacher_forcing_and_free_running(rng, tmp_path):
    model = kzoo.build("many_to_many_jordan", vocab_size=12, embedding_dim=3, units=5,
                       num_classes=4)
    ids = np.array([[3, 5, 7, 1], [2, 9, 0, 0]], dtype="int32")
    targets = np.array([[1, 0, 3, 2], [2, 2, 0, 0]], dtype="int32")
    features = model.get_layer("inputs_embedding")(ids)
    jordan = model.get_layer("jordan")

    teacher_forced = model((ids, targets)).numpy()
    np.testing.assert_allclose(
        teacher_forced, jordan(features, teacher_outputs=tf.one_hot(targets, 4)).numpy(),
        rtol=1e-6)
    # Step t sees the ground truth y_{t-1}: changing y_2 changes step 3 only.
    changed = targets.copy()
    changed[:, 1] = (changed[:, 1] + 1) % 4
    delta = np.abs(model((ids, changed)).numpy() - teacher_forced)[0].max(-1)
    assert delta[2] > 1e-4 and np.all(delta[[0, 1, 3]] == 0)

    free = many_to_many.free_running_model(model)
    predictions = free(ids).numpy()
    # Free running feeds back its own predictions: teacher-forcing them reproduces it.
    np.testing.assert_allclose(jordan(features, teacher_outputs=predictions).numpy()[0],
                               predictions[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictions.sum(-1)[0], 1.0, rtol=1e-5)

    path = str(tmp_path / "jordan.keras")
    model.save(path)
    loaded_free = many_to_many.free_running_model(keras.saving.load_model(path))
    np.testing.assert_allclose(loaded_free(ids).numpy(), predictions, rtol=1e-5, atol=1e-6)


# -- one-to-many: generation from the features alone --------------------------------------------
def test_one_to_many_generate_equals_stepping_the_cell_by_hand(rng):
    model = kzoo.build("one_to_many_gru", feature_dim=6, vocab_size=9, embedding_dim=3, units=5)
    features = rng.normal(size=(2, 6)).astype("float32")
    tokens = one_to_many.generate(model, features, max_length=4).numpy()
    assert tokens.shape == (2, 4)

    init = model.get_layer("init_1_0")
    cell = model.get_layer("decoder_1").cell
    embedding = model.get_layer("target_embedding")
    head = model.get_layer("outputs")
    for row in range(2):
        h = init(features[row:row + 1])
        token, expected = one_to_many.START_ID, []
        for _ in range(4):
            h, _ = cell(embedding(np.array([token])).numpy(), [h])
            probs = head(h).numpy()[0]
            probs[[one_to_many.PAD_ID, one_to_many.START_ID]] = -1
            token = int(np.argmax(probs))
            expected.append(token)
            if token == one_to_many.END_ID:
                break
        expected += [0] * (4 - len(expected))
        np.testing.assert_array_equal(tokens[row], expected)


def test_one_to_many_generate_stops_at_end_token(rng):
    model = kzoo.build("one_to_many_lstm", feature_dim=6, vocab_size=9, embedding_dim=3,
                       units=5)
    head = model.get_layer("outputs")
    kernel, bias = head.get_weights()
    bias[one_to_many.END_ID] = 50.0
    head.set_weights([kernel, bias])
    tokens = model.generate(rng.normal(size=(3, 6)).astype("float32"), max_length=5).numpy()
    np.testing.assert_array_equal(tokens, [[one_to_many.END_ID, 0, 0, 0, 0]] * 3)


# -- bad config and names ----------------------------------------------------------------------
BAD_CONFIG = [("num_layers", 0), ("units", -1), ("merge_mode", "max"), ("vocab_size", 0),
              ("dropout", 1.5), ("not_a_key", 1)]


@pytest.mark.parametrize("name", ["one_to_one_mlp", "one_to_many_lstm", "many_to_one_bi_gru",
                                  "many_to_many_deep_lstm", "many_to_many_jordan",
                                  "many_to_many_convlstm"] + km.list_models("seq2seq*"))
def test_bad_config_raises_value_error_naming_the_key(name):
    accepted = kzoo.model_info(name).default_config
    checked = 0
    for key, value in BAD_CONFIG:
        if key in accepted or key == "not_a_key":
            with pytest.raises(ValueError, match=key):
                kzoo.build(name, **{key: value})
            checked += 1
    assert checked >= 2


def test_close_names_are_suggested():
    with pytest.raises(ValueError, match="lstm"):
        validate_common("many_to_one", cell="lstmm")
    with pytest.raises(ValueError, match="did you mean 'lstm'"):
        recurrent_stack(keras.Input((None, 3)), cell="lstmm")
    with pytest.raises(ValueError, match="did you mean.*many_to_one_lstm"):
        kzoo.build("many_to_one_lstmm")
    with pytest.raises(ValueError, match="accepted keys"):
        kzoo.build("many_to_one_lstm", cell="gru")


def test_list_models_filters_by_pattern_and_glob():
    names = kzoo.list_models()
    assert names == sorted(names)
    for required in ["one_to_one_mlp", "one_to_many_gru", "many_to_one_bi_rnn",
                     "many_to_one_deep_lstm", "many_to_many_bi_gru", "many_to_many_deep_rnn",
                     "many_to_many_jordan", "many_to_many_convlstm"]:
        assert required in names
    assert kzoo.list_models("many_to_one") == kzoo.list_models("many_to_one_*")
    bi = kzoo.list_models("*_bi_*")
    assert all("_bi_" in n for n in bi)
    assert {f"{p}_bi_{c}" for p in ("many_to_many", "many_to_one")
            for c in ("gru", "lstm", "rnn")} <= set(bi)


# -- metadata: descriptions, argument explanations, the static catalog ---------------------------
def test_description_is_the_builders_whole_first_paragraph():
    for name in kzoo.list_models():
        info, builder = kzoo.model_info(name), getattr(_module_of(name), name)
        first = inspect.getdoc(builder).split("\n\n")[0]
        assert info.description == " ".join(first.split()), name
        # `kzoo info` prints it: whole sentences, no reST markup.
        assert info.description.endswith("."), (name, info.description)
        assert "``" not in info.description and ":class:" not in info.description, name
    assert kzoo.model_info("seq2seq_attention").description == (
        "Seq2seq, LSTM encoder-decoder with Bahdanau (additive) attention and input feeding: "
        "the headline model, for translation-shaped tasks.")


def _module_of(name):
    return importlib.import_module(f"kzoo.models.{kzoo.model_info(name).pattern}")


def test_every_argument_is_explained_in_model_info_and_the_builders_args():
    used = set()
    for name in kzoo.list_models():
        info = kzoo.model_info(name)
        assert list(info.arguments) == list(info.default_config), name
        for key, line in info.arguments.items():
            assert line and "\n" not in line, (name, key)
            used.update(k for k in (f"{name}.{key}", f"{info.pattern}.{key}", key)
                        if k in arguments.ARGUMENTS)
            doc = " ".join(getattr(_module_of(name), name).__doc__.split())
            assert f" {key}: {line}" in doc.split("Args:")[1], (name, key)
    assert kzoo.model_info("many_to_one_lstm").arguments["units"] == arguments.ARGUMENTS["units"]
    assert kzoo.model_info("one_to_one_mlp").arguments["units"] == \
        arguments.ARGUMENTS["one_to_one.units"]
    # No explanation is left over from an argument no model takes any more.
    assert sorted(set(arguments.ARGUMENTS) - used) == []


def test_register_model_refuses_an_unexplained_argument():
    def tiny_model(*, units=4, wobble=0.5):
        """A model."""

    with pytest.raises(TypeError, match=r"tiny_model.*\['wobble'\].*kzoo.models.arguments"):
        km.register_model("one_to_one", "mlp")(tiny_model)
    assert "tiny_model" not in kzoo.list_models()


def test_catalog_equals_the_live_registry():
    """The static table that answers without TensorFlow says what the registrations say."""
    static, live = registry.catalog_infos(), registry.registered_infos()
    stale = sorted(name for name in static.keys() | live.keys()
                   if static.get(name) != live.get(name))
    assert not stale, f"kzoo/models/catalog.json is out of date for {stale}: run " \
                      f"`python -m kzoo.models.catalog`"
    assert list(static) == list(live) == kzoo.list_models()
    # ... and is installed with the package.
    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).parents[2] / "setup.cfg")
    assert catalog.CATALOG_PATH.name in setup["options.package_data"]["kzoo.models"]
