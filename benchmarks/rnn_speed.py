"""Train-step and inference time of kzoo LSTM/GRU against keras.layers.LSTM/GRU, in one process.

    python benchmarks/rnn_speed.py [--shape B,T,F,U ...] [--models single,deep,bidirectional]
                                   [--cells lstm,gru] [--repeats N] [--scaling T,T,...]

For every (cell, model, shape) one row: milliseconds per call of a training step (forward,
gradients, SGD update) and of inference, for kzoo and the Keras equivalent, and their ratios
(kzoo / Keras: below 1.0 means kzoo is faster). Beside them: kzoo inference under
``scan_mode("xla")``, ``torch.nn.LSTM/GRU`` when torch is installed, and the roofline, the time
of the layer's floating-point work run as one large matmul. Models are ``single`` (one layer),
``deep`` (two stacked) and ``bidirectional`` (concat), each under a Dense(1) head. Every
function is a compiled ``tf.function`` timed after its first calls (tracing) and interleaved
with its Keras twin, so that a load that comes and goes hits both alike (torch is timed
separately: interleaved, the two runtimes' thread pools fight for the cores).

``--scaling`` prints a second table: kzoo's time per step at batch 16, 32 inputs, 64 units for
each sequence length, and the ratio of the longest to the shortest (linear cost: 1.0).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import common  # noqa: E402
import kzoo  # noqa: E402

LAYERS = {
    "lstm": (kzoo.layers.LSTM, keras.layers.LSTM, 4),
    "gru": (kzoo.layers.GRU, keras.layers.GRU, 3),
}
BIDIRECTIONAL = {"kzoo": kzoo.layers.Bidirectional, "keras": keras.layers.Bidirectional}
MODELS = ("single", "deep", "bidirectional")
DEFAULT_SHAPES = ("64,100,64,128", "16,1000,32,64")


def build(kind, layer_cls, bidirectional_cls, shape, seed=0):
    batch, steps, features, units = shape
    keras.utils.set_random_seed(seed)
    if kind == "single":
        body = [layer_cls(units)]
    elif kind == "deep":
        body = [layer_cls(units, return_sequences=True), layer_cls(units)]
    else:
        body = [bidirectional_cls(layer_cls(units))]
    return keras.Sequential([keras.Input((steps, features)), *body, keras.layers.Dense(1)])


def keras_functions(model, x):
    """(train_step, infer, infer_xla) of a Keras model on ``x``, as compiled tf.functions."""
    train_step, infer = common.step_functions(model, x)

    @tf.function
    def infer_xla():
        with kzoo.layers.scan_mode("xla"):
            return model(x, training=False)

    return (lambda: train_step().numpy(), lambda: infer().numpy(),
            lambda: infer_xla().numpy())


def torch_functions(cell, kind, shape, x):
    """(train_step, infer) of the same model in torch, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count())
    batch, steps, features, units = shape
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = rnn_cls(features, units, num_layers=2 if kind == "deep" else 1, batch_first=True,
                  bidirectional=kind == "bidirectional")
    head = torch.nn.Linear(units * (2 if kind == "bidirectional" else 1), 1)
    parameters = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.0)
    inputs = torch.from_numpy(np.array(x))
    target = torch.zeros(batch, 1)

    def forward():
        outputs, _ = rnn(inputs)
        if kind == "bidirectional":
            last = torch.cat([outputs[:, -1, :units], outputs[:, 0, units:]], dim=1)
        else:
            last = outputs[:, -1]
        return head(last)

    def train_step():
        optimizer.zero_grad()
        loss = ((forward() - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    def infer():
        with torch.no_grad():
            return forward().numpy()

    return train_step, infer


def roofline(cell, kind, shape, repeats):
    """(train ms, infer ms) of the layer's FLOPs as one matmul: (B·T, F+U) @ (F+U, k·U) per
    layer and direction for inference, three of them (forward, two gradients) for training."""
    batch, steps, features, units = shape
    gates = LAYERS[cell][2]
    layers = 2 if kind in ("deep", "bidirectional") else 1
    a = tf.random.normal((batch * steps * layers, features + units))
    b = tf.random.normal((features + units, gates * units))
    c = tf.random.normal((batch * steps * layers, gates * units))
    once = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    thrice = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b))
                         + tf.reduce_sum(tf.matmul(c, b, transpose_b=True))
                         + tf.reduce_sum(tf.matmul(a, c, transpose_a=True)))
    infer, train = common.paired_median_seconds(
        [lambda: once().numpy(), lambda: thrice().numpy()], repeats)
    return train * 1e3, infer * 1e3


def measure(cell, kind, shape, repeats, with_torch=True):
    """One table row (a dict by column)."""
    ours_layer, keras_layer, _ = LAYERS[cell]
    batch, steps, features, _ = shape
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, steps, features)), tf.float32)
    ours = keras_functions(build(kind, ours_layer, BIDIRECTIONAL["kzoo"], shape), x)
    theirs = keras_functions(build(kind, keras_layer, BIDIRECTIONAL["keras"], shape), x)
    fns = [ours[0], theirs[0], ours[1], theirs[1], ours[2]]
    times = [t * 1e3 for t in common.paired_median_seconds(fns, repeats)]
    torch_fns = torch_functions(cell, kind, shape, x) if with_torch else None
    if torch_fns:
        # Timed on their own: interleaved with TensorFlow's calls, the two runtimes' thread
        # pools fight for the cores and torch's times come out several times too long.
        times += [t * 1e3 for t in common.paired_median_seconds(list(torch_fns), repeats)]
    train, keras_train, infer, keras_infer, xla_infer = times[:5]
    roof_train, roof_infer = roofline(cell, kind, shape, repeats)
    row = {
        "cell": cell, "model": kind, "(B, T, F, U)": str(shape),
        "kzoo train ms": f"{train:.1f}", "Keras train ms": f"{keras_train:.1f}",
        "train ratio": f"{train / keras_train:.2f}",
        "kzoo infer ms": f"{infer:.1f}", "Keras infer ms": f"{keras_infer:.1f}",
        "infer ratio": f"{infer / keras_infer:.2f}",
        "xla infer ratio": f"{xla_infer / keras_infer:.2f}",
        "torch train ms": f"{times[5]:.1f}" if torch_fns else "-",
        "torch infer ms": f"{times[6]:.1f}" if torch_fns else "-",
        "roofline train/infer ms": f"{roof_train:.1f} / {roof_infer:.1f}",
    }
    return row


COLUMNS = ["cell", "model", "(B, T, F, U)", "kzoo train ms", "Keras train ms", "train ratio",
           "kzoo infer ms", "Keras infer ms", "infer ratio", "xla infer ratio",
           "torch train ms", "torch infer ms", "roofline train/infer ms"]
SCALING_COLUMNS = ["cell", "T", "train ms/step", "infer ms/step"]


def scaling(cell, lengths, repeats, batch=16, features=32, units=64):
    """Rows of kzoo's time per step at each length, and a last row: longest / shortest."""
    rows, per_step = [], []
    for steps in lengths:
        shape = (batch, steps, features, units)
        x = tf.constant(np.random.default_rng(0).normal(size=(batch, steps, features)),
                        tf.float32)
        train, infer, _ = keras_functions(build("single", LAYERS[cell][0], None, shape), x)
        times = common.paired_median_seconds([train, infer], repeats)
        per_step.append([t * 1e3 / steps for t in times])
        rows.append({"cell": cell, "T": steps, "train ms/step": f"{per_step[-1][0]:.4f}",
                     "infer ms/step": f"{per_step[-1][1]:.4f}"})
    rows.append({"cell": cell, "T": f"{lengths[-1]} / {lengths[0]}",
                 "train ms/step": f"{per_step[-1][0] / per_step[0][0]:.2f}x",
                 "infer ms/step": f"{per_step[-1][1] / per_step[0][1]:.2f}x"})
    return rows


def positive_ints(text, count=None):
    values = tuple(int(v) for v in text.split(","))
    if (count and len(values) != count) or min(values) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected {count or 'some'} positive integers separated by commas, got {text!r}")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", type=lambda t: positive_ints(t, 4),
                        help=f"batch,time,features,units (repeatable); default "
                             f"{' and '.join(DEFAULT_SHAPES)}")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scaling", type=positive_ints, default=None,
                        help="sequence lengths for the scaling table, e.g. 100,1000,4000")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch columns")
    args = parser.parse_args(argv)
    shapes = args.shape or [positive_ints(s, 4) for s in DEFAULT_SHAPES]
    cells, kinds = args.cells.split(","), args.models.split(",")
    for name, given, known in (("cell", cells, LAYERS), ("model", kinds, MODELS)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            parser.error(f"unknown {name} {', '.join(unknown)}; known: {', '.join(known)}")
    print(common.header("rnn_speed"))
    print(common.table_head(COLUMNS), flush=True)
    for cell in cells:
        for kind in kinds:
            for shape in shapes:
                row = measure(cell, kind, shape, args.repeats, with_torch=not args.no_torch)
                print(common.table_row(COLUMNS, row), flush=True)
    if args.scaling:
        print()
        print(common.table_head(SCALING_COLUMNS))
        for cell in cells:
            for row in scaling(cell, args.scaling, args.repeats):
                print(common.table_row(SCALING_COLUMNS, row), flush=True)


if __name__ == "__main__":
    main()
