"""kzoo.diagnostics: gradient flow equals a NumPy backward pass and shows the vanishing
gradient (rnn decays faster than lstm); the plots are non-empty PNG files."""

import keras
import numpy as np
import pytest

from kzoo import diagnostics, layers

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 2000


def test_rnn_gradient_flow_equals_backpropagation_by_hand():
    length, units, input_dim, batch, seed = 6, 3, 4, 2, 5
    norms = diagnostics.gradient_flow("rnn", length=length, units=units, input_dim=input_dim,
                                      batch_size=batch, seed=seed)
    # The same cell, inputs and readout as gradient_flow draws them.
    keras.utils.set_random_seed(seed)
    cell = layers.SimpleRNNCell(units)
    cell.build((None, input_dim))
    kernel, recurrent, bias = (keras.ops.convert_to_numpy(w) for w in cell.weights)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, length, input_dim))
    readout = rng.normal(size=(units, 1)) / np.sqrt(units)
    h = [np.zeros((batch, units))]
    for t in range(length):
        h.append(np.tanh(x[:, t] @ kernel + h[-1] @ recurrent + bias))
    grad = np.tile(readout.T, (batch, 1))           # dL/dh_T
    expected = [None] * length
    for t in reversed(range(length)):
        expected[t] = np.linalg.norm(grad, axis=-1).mean()
        grad = (grad * (1 - h[t + 1] ** 2)) @ recurrent.T   # back through h_t = tanh(...)
    np.testing.assert_allclose(norms, expected, rtol=1e-5)


def test_rnn_gradient_vanishes_faster_than_lstm():
    flows = diagnostics.gradient_flow_comparison(length=40, units=16, batch_size=8)
    assert set(flows) == {"rnn", "lstm", "gru"}
    for norms in flows.values():
        assert norms.shape == (40,) and np.all(np.isfinite(norms))
    # Same readout: dL/dh_T is the same for every cell.
    assert flows["rnn"][-1] == pytest.approx(flows["lstm"][-1])
    rnn, lstm = diagnostics.decay_rate(flows["rnn"]), diagnostics.decay_rate(flows["lstm"])
    assert rnn < lstm < 1.0
    # 39 steps back, the rnn keeps a smaller share of its gradient than the lstm.
    assert flows["rnn"][0] / flows["rnn"][-1] < flows["lstm"][0] / flows["lstm"][-1]


def test_decay_rate_of_a_geometric_sequence():
    assert diagnostics.decay_rate(0.5 ** np.arange(10)[::-1]) == pytest.approx(0.5)


def test_plots_are_png_files(tmp_path):
    history = {"epochs": [0, 1, 2], "metrics": {"loss": [1.0, 0.6, 0.4],
                                                "accuracy": [0.5, 0.7, 0.8],
                                                "val_loss": [1.1, 0.7, 0.5]}}
    assert_png(diagnostics.plot_history(history, tmp_path / "curves.png"))
    assert_png(diagnostics.plot_history({"loss": [1.0, 0.5]}, tmp_path / "keras.png"))
    weights = np.random.default_rng(0).dirichlet(np.ones(5), size=4)
    assert_png(diagnostics.plot_attention(weights, list("abcde"), ["w", "x", "y", "</s>"],
                                          tmp_path / "attention.png", title="abcde"))
    flows = {"rnn": 0.5 ** np.arange(20)[::-1], "lstm": 0.9 ** np.arange(20)[::-1]}
    assert_png(diagnostics.plot_gradient_flow(flows, tmp_path / "flow.png"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell"):
        diagnostics.gradient_flow("transformer")
    with pytest.raises(ValueError, match="T_out, T_in"):
        diagnostics.plot_attention(np.zeros(3), [], [], "unused.png")
    with pytest.raises(ValueError, match="no metric"):
        diagnostics.plot_history({"val_loss": [1.0]}, "unused.png")
