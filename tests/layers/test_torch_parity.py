"""kzoo <-> PyTorch weight mapping: outputs and states equal torch's, round trips are exact."""

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

import kzoo.layers  # noqa: E402
from kzoo.layers import from_torch, to_torch, to_torch_state_dict  # noqa: E402

BATCH, TIME, FEATURES, UNITS = 2, 5, 3, 4
TORCH_CLASSES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
KZOO_CLASSES = {"lstm": kzoo.layers.LSTM, "gru": kzoo.layers.GRU, "rnn": kzoo.layers.SimpleRNN}

CASES = {
    "lstm": ("lstm", {}),
    "lstm_proj": ("lstm", {"proj_size": 2}),
    "gru": ("gru", {}),
    "rnn_tanh": ("rnn", {}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "lstm_bidirectional": ("lstm", {"bidirectional": True}),
    "lstm_proj_bidirectional": ("lstm", {"bidirectional": True, "proj_size": 3}),
    "gru_bidirectional": ("gru", {"bidirectional": True}),
    "gru_no_bias": ("gru", {"bias": False}),
}


def make_torch(kind, seed=0, **kwargs):
    torch.manual_seed(seed)
    module = TORCH_CLASSES[kind](FEATURES, UNITS, batch_first=True, **kwargs).float()
    # torch's default init leaves biases near zero; make every parameter matter.
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.uniform_(-0.6, 0.6)
    return module


def make_kzoo(kind, torch_kwargs, bias=True):
    cell_kwargs = {"use_bias": bias}
    if torch_kwargs.get("proj_size"):
        cell_kwargs["proj_units"] = torch_kwargs["proj_size"]
    if torch_kwargs.get("nonlinearity"):
        cell_kwargs["activation"] = torch_kwargs["nonlinearity"]
    layer = KZOO_CLASSES[kind](UNITS, return_sequences=True, return_state=True, **cell_kwargs)
    if torch_kwargs.get("bidirectional"):
        layer = keras.layers.Bidirectional(layer, merge_mode="concat")
    return layer


def inputs(seed=1):
    return np.random.default_rng(seed).normal(size=(BATCH, TIME, FEATURES)).astype(np.float32)


def torch_run(module, x):
    """torch's outputs and final states, in Keras' return_state order."""
    with torch.no_grad():
        outputs, state = module(torch.from_numpy(x))
    states = state if isinstance(state, tuple) else (state,)
    states = [s.numpy() for s in states]
    per_direction = [[s[d] for s in states] for d in range(states[0].shape[0])]
    return outputs.numpy(), [s for direction in per_direction for s in direction]


def kzoo_run(layer, x):
    output, *states = layer(x)
    return np.asarray(output), [np.asarray(s) for s in states]


def assert_same_run(expected, actual):
    (expected_outputs, expected_states), (outputs, states) = expected, actual
    np.testing.assert_allclose(outputs, expected_outputs, rtol=0, atol=1e-5)
    assert len(states) == len(expected_states)
    for state, expected_state in zip(states, expected_states):
        np.testing.assert_allclose(state, expected_state, rtol=0, atol=1e-5)


def randomize(layer):
    rng = np.random.default_rng(7)
    for variable in layer.weights:
        variable.assign(rng.uniform(-0.6, 0.6, size=variable.shape).astype(np.float32))


@pytest.mark.parametrize("source_kind", ["module", "state_dict"])
@pytest.mark.parametrize("case", list(CASES))
def test_from_torch_matches_torch_outputs_and_states(case, source_kind):
    kind, kwargs = CASES[case]
    module = make_torch(kind, **kwargs)
    layer = make_kzoo(kind, kwargs)  # unbuilt: from_torch builds it for torch's input size
    source = module if source_kind == "module" else {
        "rnn." + k: v for k, v in module.state_dict().items()}
    assert from_torch(source, layer, prefix="" if source_kind == "module" else "rnn.") is layer
    x = inputs()
    assert_same_run(torch_run(module, x), kzoo_run(layer, x))


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_kzoo_torch_kzoo(case):
    kind, kwargs = CASES[case]
    layer = make_kzoo(kind, kwargs, bias=kwargs.get("bias", True))
    x = inputs()
    layer(x)
    randomize(layer)
    module = make_torch(kind, seed=3, **kwargs)
    assert to_torch(layer, module) is module
    assert_same_run(kzoo_run(layer, x), torch_run(module, x))

    state = to_torch_state_dict(layer)
    assert list(state) == list(module.state_dict())
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(state[name], value.numpy())

    copy = make_kzoo(kind, kwargs, bias=kwargs.get("bias", True))
    from_torch(module, copy)
    assert len(copy.weights) == len(layer.weights)
    for original, loaded in zip(layer.weights, copy.weights):
        assert original.path.split("/")[-1] == loaded.path.split("/")[-1]
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(original))


def test_gate_reorder_against_hand_mapping():
    """The mapping itself, not only its round trip: torch GRU r,z,n -> Keras z,r,h."""
    module = make_torch("gru")
    layer = kzoo.layers.GRU(UNITS)
    from_torch(module, layer)
    sd = {k: v.numpy() for k, v in module.state_dict().items()}
    r, z, n = np.split(sd["weight_ih_l0"], 3)
    np.testing.assert_array_equal(np.asarray(layer.cell.kernel), np.concatenate([z, r, n]).T)
    b_r, b_z, b_n = np.split(sd["bias_hh_l0"], 3)
    np.testing.assert_array_equal(np.asarray(layer.cell.bias)[1], np.concatenate([b_z, b_r, b_n]))

    lstm = make_torch("lstm")
    lstm_layer = kzoo.layers.LSTM(UNITS)
    from_torch(lstm, lstm_layer)
    sd = {k: v.numpy() for k, v in lstm.state_dict().items()}
    np.testing.assert_allclose(np.asarray(lstm_layer.cell.bias),
                               sd["bias_ih_l0"] + sd["bias_hh_l0"], rtol=0, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(lstm_layer.cell.recurrent_kernel),
                                  sd["weight_hh_l0"].T)


def test_stacked_torch_module_onto_list_of_layers():
    module = make_torch("lstm", num_layers=2, bidirectional=True)
    first = keras.layers.Bidirectional(kzoo.layers.LSTM(UNITS, return_sequences=True))
    second = keras.layers.Bidirectional(
        kzoo.layers.LSTM(UNITS, return_sequences=True, return_state=True))
    from_torch(module, [first, second])
    x = inputs()
    output, *states = second(first(x))
    torch_outputs, torch_states = torch_run(module, x)
    # torch returns the final states of both layers; the second layer's are the last four.
    assert_same_run((torch_outputs, torch_states[4:]),
                    (np.asarray(output), [np.asarray(s) for s in states]))

    back = make_torch("lstm", seed=5, num_layers=2, bidirectional=True)
    to_torch([first, second], back)
    assert_same_run(torch_run(module, x), torch_run(back, x))


def test_keras_layers_and_cells_are_targets_too():
    module = make_torch("gru")
    layer = keras.layers.GRU(UNITS, return_sequences=True, return_state=True)
    from_torch(module, layer)
    x = inputs()
    assert_same_run(torch_run(module, x), kzoo_run(layer, x))

    cell = kzoo.layers.GRUCell(UNITS)
    from_torch(module, cell)
    np.testing.assert_array_equal(np.asarray(cell.kernel), np.asarray(layer.cell.kernel))


def test_kzoo_bidirectional_is_a_target():
    module = make_torch("gru", bidirectional=True)
    layer = kzoo.layers.Bidirectional(
        kzoo.layers.GRU(UNITS, return_sequences=True, return_state=True))
    from_torch(module, layer)
    x = inputs()
    assert_same_run(torch_run(module, x), kzoo_run(layer, x))


def test_torch_without_bias_loads_as_zero_bias_and_goes_back():
    with pytest.raises(ValueError, match="use_bias=False but torch has biases"):
        from_torch(make_torch("lstm"), kzoo.layers.LSTM(UNITS, use_bias=False))
    module = make_torch("lstm", bias=False)
    layer = make_kzoo("lstm", {})
    from_torch(module, layer)
    np.testing.assert_array_equal(np.asarray(layer.cell.bias), np.zeros(4 * UNITS))
    x = inputs()
    assert_same_run(torch_run(module, x), kzoo_run(layer, x))
    to_torch(layer, make_torch("lstm", seed=4, bias=False))  # zero bias fits bias=False
    randomize(layer)
    with pytest.raises(ValueError, match="nonzero bias"):
        to_torch(layer, make_torch("lstm", bias=False))


def test_torch_is_not_imported_at_module_level():
    """Importing kzoo must not need torch (a fresh process would take seconds to prove it, so
    read the module's top-level imports instead)."""
    import ast
    import inspect

    import kzoo.layers.torch_weights as module

    tree = ast.parse(inspect.getsource(module))
    imported = [alias.name for node in tree.body if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert imported and not [name for name in imported if name.split(".")[0] == "torch"]


@pytest.mark.parametrize("torch_kind,torch_kwargs,layer_factory,message", [
    ("gru", {}, lambda: kzoo.layers.GRU(UNITS, reset_after=False), "reset_after=False"),
    ("gru", {}, lambda: kzoo.layers.GRU(UNITS + 1), "shape"),
    ("gru", {}, lambda: kzoo.layers.LSTM(UNITS), "maps onto a GRU layer, but .* is an LSTM"),
    ("lstm", {}, lambda: kzoo.layers.LSTM(UNITS, peephole=True), "peephole"),
    ("lstm", {}, lambda: kzoo.layers.LSTM(UNITS, recurrent_activation="hard_sigmoid"),
     "recurrent_activation"),
    ("lstm", {"proj_size": 2}, lambda: kzoo.layers.LSTM(UNITS), "proj_size=2"),
    ("lstm", {}, lambda: kzoo.layers.LSTM(UNITS, proj_units=2), "proj_units=2"),
    ("lstm", {"bidirectional": True}, lambda: kzoo.layers.LSTM(UNITS), "Bidirectional"),
    ("lstm", {}, lambda: keras.layers.Bidirectional(kzoo.layers.LSTM(UNITS)), "single-direction"),
    ("lstm", {"num_layers": 2}, lambda: kzoo.layers.LSTM(UNITS), "num_layers=2"),
    ("rnn", {"nonlinearity": "relu"}, lambda: kzoo.layers.SimpleRNN(UNITS), "nonlinearity"),
    ("rnn", {}, lambda: keras.layers.Dense(UNITS), "expected a kzoo or Keras LSTM"),
    ("lstm", {}, lambda: kzoo.layers.ConvLSTM2D(UNITS, 3), "convolutional"),
])
def test_wrong_mappings_raise_value_error(torch_kind, torch_kwargs, layer_factory, message):
    module = make_torch(torch_kind, **torch_kwargs)
    with pytest.raises(ValueError, match=message):
        from_torch(module, layer_factory())
    with pytest.raises(ValueError, match=message):
        layer = layer_factory()
        if isinstance(layer, keras.layers.Bidirectional) or (
                isinstance(layer, kzoo.layers.Recurrent) and layer.cell.step_input_rank() == 2):
            layer.build((None, None, FEATURES))
        to_torch(layer, module)


def test_state_dict_errors_and_failed_load_leaves_layers_unchanged():
    module = make_torch("gru", num_layers=2)
    first, second = kzoo.layers.GRU(UNITS, return_sequences=True), kzoo.layers.GRU(UNITS + 1)
    x = inputs()
    second(first(x))
    before = [np.asarray(w).copy() for w in first.weights]
    with pytest.raises(ValueError, match="weight_ih_l1"):
        from_torch(module.state_dict(), [first, second])
    for value, variable in zip(before, first.weights):
        np.testing.assert_array_equal(np.asarray(variable), value)

    with pytest.raises(ValueError, match="not a parameter"):
        from_torch({"encoder.weight_ih_l0": np.zeros((12, 3))}, kzoo.layers.GRU(UNITS))
    with pytest.raises(ValueError, match="not built"):
        to_torch_state_dict(kzoo.layers.GRU(UNITS))
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        from_torch(torch.nn.Linear(3, 4), kzoo.layers.LSTM(UNITS))
