"""What a training run looks like: training curves, attention heatmaps, gradient flow.

    kzoo.diagnostics.plot_history(run.history, "curves.png")
    kzoo.diagnostics.plot_attention(weights, source_tokens, target_tokens, "attention.png")
    norms = kzoo.diagnostics.gradient_flow_comparison(length=100)   # {"rnn": (T,), ...}
    kzoo.diagnostics.plot_gradient_flow(norms, "gradient_flow.png")

Gradient flow is the vanishing gradient, seen: for a loss on the last state h_T of a sequence of
length T, :func:`gradient_flow` measures ||dL/dh_t|| for every t. Plots use matplotlib's Agg
backend (no display needed) and write PNG files.
"""

import pathlib

import numpy as np

__all__ = ["CELLS", "decay_rate", "gradient_flow", "gradient_flow_comparison", "plot_attention",
           "plot_gradient_flow", "plot_history"]

CELLS = ("rnn", "lstm", "gru")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)
    return path


def _history_metrics(history):
    # A kzoo history ({"epochs", "metrics"}), or keras' History / History.history dict.
    history = getattr(history, "history", history)
    if "metrics" in history and isinstance(history["metrics"], dict):
        return history.get("epochs"), history["metrics"]
    return None, dict(history)


def plot_history(history, path):
    """Plots training curves: one panel per metric (loss, accuracy...), train and validation.

    Each metric ``m`` of the history gets a panel over the epochs, with ``val_m`` beside it
    when the history has it.

    Args:
        history: the training history: a kzoo run's ``history.json`` dict (``{"epochs": [...],
            "metrics": {...}}``), the ``keras.callbacks.History`` that ``model.fit`` returns, or
            its ``.history`` dict ``{metric: [one value per epoch]}``.
        path: the PNG file to write (str or path-like); missing parent directories are
            created.

    Returns:
        The path written, a ``pathlib.Path``.

    Raises:
        ValueError: if the history holds no metric (only ``val_`` ones, or none).

    Example:

    ```python
    import kzoo.diagnostics

    history = {"loss": [1.2, 0.8, 0.6], "val_loss": [1.3, 0.9, 0.8],
               "accuracy": [0.4, 0.6, 0.7], "val_accuracy": [0.4, 0.5, 0.6]}
    print(kzoo.diagnostics.plot_history(history, "curves.png"))   # curves.png
    ```
    """
    epochs, metrics = _history_metrics(history)
    names = [key for key in metrics if not key.startswith("val_")]
    if not names:
        raise ValueError("plot_history: the history has no metric to plot")
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        values = metrics[name]
        x = [e + 1 for e in epochs] if epochs else list(range(1, len(values) + 1))
        axis.plot(x, values, marker="o", label="train")
        if f"val_{name}" in metrics:
            axis.plot(x[:len(metrics[f"val_{name}"])], metrics[f"val_{name}"], marker="o",
                      label="validation")
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)


def plot_attention(weights, source_tokens, target_tokens, path, title=None):
    """Plots attention weights as a heatmap: where each output token looked in the source.

    Row i of ``weights`` is the alignment α of output token i over the source tokens (it sums
    to 1 over the real source tokens). When there are many more output than source tokens
    (words to characters), the outputs run along the x axis, which reads better.

    Args:
        weights: the alignments, an array (T_out, T_in), e.g. one row of the ``attention``
            output of a seq2seq model's ``generate``.
        source_tokens: the source's tokens (str, or ids), one per column; columns beyond them
            are cut off, so pass the tokens up to the end token.
        target_tokens: the output's tokens (str, or ids), one per row; rows beyond them are
            cut off.
        path: the PNG file to write (str or path-like); missing parent directories are
            created.
        title: the plot's title (default None: no title).

    Returns:
        The path written, a ``pathlib.Path``.

    Raises:
        ValueError: if ``weights`` is not 2-D.

    Example:

    ```python
    import numpy as np
    import kzoo.diagnostics

    weights = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])    # 3 outputs over 2 sources
    kzoo.diagnostics.plot_attention(weights, ["twenty", "three"], ["drei", "und", "zwanzig"],
                                    "attention.png", title="en -> de")
    ```
    """
    weights = np.asarray(weights, dtype="float32")
    if weights.ndim != 2:
        raise ValueError(f"plot_attention: weights must be (T_out, T_in), got {weights.shape}")
    source_tokens = [str(t) for t in source_tokens][:weights.shape[1]]
    target_tokens = [str(t) for t in target_tokens][:weights.shape[0]]
    weights = weights[:len(target_tokens), :len(source_tokens)]
    # Many more output than source tokens (words -> characters): outputs along x reads better.
    across = len(target_tokens) > 2 * len(source_tokens)
    x_tokens, y_tokens = (target_tokens, source_tokens) if across else \
        (source_tokens, target_tokens)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.5 + 0.4 * max(len(x_tokens), 4),
                                         1.2 + 0.4 * max(len(y_tokens), 4)))
    image = axis.imshow(weights.T if across else weights, cmap="viridis", vmin=0.0,
                        aspect="auto")
    axis.set_xticks(range(len(x_tokens)), x_tokens, rotation=90)
    axis.set_yticks(range(len(y_tokens)), y_tokens)
    axis.set_xlabel("output" if across else "source")
    axis.set_ylabel("source" if across else "output")
    if title:
        axis.set_title(title)
    figure.colorbar(image, ax=axis)
    return _save(figure, path)


def gradient_flow(cell, *, length=100, units=32, input_dim=8, batch_size=16, seed=0):
    """Measures the gradient that reaches each step: ||dL/dh_t|| for t = 1..length.

    The loss reads only the last state of a freshly initialized cell (Keras' default
    initializers) run over standard normal inputs, through a fixed random readout w:

        L = w · h_T,        g_t = ||dL/dh_t||  (the total derivative, through the recurrence)

    averaged over the batch. The derivative is taken by adding a zero perturbation e_t to each
    state (h_t <- h_t + e_t) and differentiating by e_t, which equals dL/dh_t. A SimpleRNN's
    g_t falls geometrically as t moves away from T (the vanishing gradient); an LSTM's cell
    state carries it much further.

    Args:
        cell: ``"rnn"`` (``kzoo.layers.SimpleRNNCell``), ``"lstm"`` or ``"gru"``.
        length: the sequence length T (default 100).
        units: the cell's units (default 32).
        input_dim: the input features per step (default 8).
        batch_size: the sequences averaged over (default 16).
        seed: seeds the weights, inputs and readout (default 0): the same seed gives the same
            task to every cell.

    Returns:
        A NumPy array (length,): ``g_t`` for t = 1..length.

    Raises:
        ValueError: if ``cell`` is not one of ``CELLS``.

    Example:

    ```python
    import kzoo.diagnostics

    norms = kzoo.diagnostics.gradient_flow("rnn", length=20, units=8)
    print(norms.shape, norms[0] < norms[-1])    # (20,) True: the gradient vanishes back in time
    ```
    """
    import keras
    import tensorflow as tf

    from kzoo import layers
    from kzoo.layers.scan import scan

    classes = {"rnn": layers.SimpleRNNCell, "lstm": layers.LSTMCell, "gru": layers.GRUCell}
    if cell not in classes:
        raise ValueError(f"gradient_flow: `cell` must be one of {CELLS}, got {cell!r}")
    keras.utils.set_random_seed(seed)
    recurrent_cell = classes[cell](units)
    recurrent_cell.build((None, input_dim))
    rng = np.random.default_rng(seed)
    inputs = tf.constant(rng.normal(size=(batch_size, length, input_dim)), tf.float32)
    readout = tf.constant(rng.normal(size=(units, 1)) / np.sqrt(units), tf.float32)
    perturbation = tf.zeros((batch_size, length, units))

    with tf.GradientTape() as tape:
        tape.watch(perturbation)
        projected = recurrent_cell.project_inputs(inputs)
        width = projected.shape[-1]
        sequence = tf.concat([projected, perturbation], -1)

        def step(x_t, states):
            output, new_states = recurrent_cell.step(x_t[:, :width], list(states))
            new_states = list(new_states)
            new_states[0] = new_states[0] + x_t[:, width:]
            return output + x_t[:, width:], new_states

        last, _, _ = scan(step, sequence,
                          recurrent_cell.get_initial_state(batch_size), return_sequences=False)
        loss = tf.reduce_sum(tf.matmul(last, readout))
    gradient = tape.gradient(loss, perturbation)
    return tf.reduce_mean(tf.norm(gradient, axis=-1), axis=0).numpy()


def gradient_flow_comparison(cells=CELLS, **kwargs):
    """Runs :func:`gradient_flow` for several cells on the same task, to compare them.

    Args:
        cells: the cells, each one of ``CELLS`` (default: all of them).
        **kwargs: the other arguments of :func:`gradient_flow` (``length``, ``units``,
            ``input_dim``, ``batch_size``, ``seed``), the same for every cell, so every cell
            gets the same inputs and readout.

    Returns:
        A dict ``{cell: NumPy array (length,)}`` of each cell's ``||dL/dh_t||``.

    Raises:
        ValueError: if a cell is not one of ``CELLS``.

    Example:

    ```python
    import kzoo.diagnostics

    norms = kzoo.diagnostics.gradient_flow_comparison(("rnn", "lstm"), length=20, units=8)
    print({cell: round(kzoo.diagnostics.decay_rate(g), 2) for cell, g in norms.items()})
    ```
    """
    return {cell: gradient_flow(cell, **kwargs) for cell in cells}


def decay_rate(norms):
    """The mean factor by which ||dL/dh_t|| changes per step back from T.

    A straight line fitted to log g_t over t gives the slope b; the factor is exp(-b): 1.0
    means no decay, 0.5 halving at every step back. Norms that underflowed to 0 are left out
    of the fit.

    Args:
        norms: the norms g_t for t = 1..T, e.g. from :func:`gradient_flow`.

    Returns:
        The factor, a float.

    Raises:
        ValueError: if fewer than two norms are above 0.

    Example:

    ```python
    import kzoo.diagnostics

    print(kzoo.diagnostics.decay_rate([1 / 8, 1 / 4, 1 / 2, 1.0]))   # 0.5 (to rounding)
    ```
    """
    norms = np.asarray(norms, dtype="float64")
    steps = np.arange(len(norms))
    # float32 gradients underflow to 0 far from T: fit only the representable part.
    kept = norms > 1e-30
    if kept.sum() < 2:
        raise ValueError("decay_rate: fewer than two non-zero norms")
    slope = np.polyfit(steps[kept], np.log(norms[kept]), 1)[0]
    return float(np.exp(-slope))


def plot_gradient_flow(norms, path):
    """Plots ||dL/dh_t|| over t on a log scale, one line per cell, with its decay rate.

    Args:
        norms: ``{cell name: norms (T,)}``, e.g. what :func:`gradient_flow_comparison`
            returns.
        path: the PNG file to write (str or path-like); missing parent directories are
            created.

    Returns:
        The path written, a ``pathlib.Path``.

    Raises:
        ValueError: if a cell's norms have fewer than two values above 0 (see
            :func:`decay_rate`).

    Example:

    ```python
    import kzoo.diagnostics

    norms = kzoo.diagnostics.gradient_flow_comparison(length=20, units=8)
    kzoo.diagnostics.plot_gradient_flow(norms, "gradient_flow.png")
    ```
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.8))
    for cell, values in norms.items():
        values = np.asarray(values)
        steps = np.arange(1, len(values) + 1)
        shown = values > 1e-30  # underflowed float32 zeros have no place on a log axis
        axis.semilogy(steps[shown], values[shown],
                      label=f"{cell} (x{decay_rate(values):.3g}/step)")
    axis.set_xlabel("t (the loss reads h_T)")
    axis.set_ylabel("||dL/dh_t||")
    axis.set_title("Gradient flow back through time")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return _save(figure, path)
