"""Does a batch split into row groups (one loop per core) run faster than one loop, per loop?

    python benchmarks/row_groups.py [--shape B,T,F,U] [--groups N] [--repeats N] [--rounds N]
                                    [--cases REGEX]

The scan engine may run the rows of a batch as several independent loops side by side
(``LoopPlan.row_groups``, docs/scan_engine.md). For each loop a layer can run in (the engine's
own backpropagation compiled by XLA or not, XLA inference, TensorFlow's inference loop, and
TensorFlow's gradient of the loop of a cell without an engine step), this times a training step
(or an inference call) of one layer under a Dense(1) head with the plan's row groups forced to 1
and to ``--groups``, the two called in alternation, and prints their ratio (groups / one loop:
below 1.0 means splitting is faster) for each of ``--rounds`` rounds.
"""

import argparse
import dataclasses
import importlib
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import common  # noqa: E402
import kzoo  # noqa: E402

L = kzoo.layers
engine = importlib.import_module("kzoo.layers.scan")

# name: (layer, scan mode, fixed time axis, training)
CASES = {
    "lstm, engine gradient, XLA": (lambda u: L.LSTM(u), "auto", True, True),
    "lstm, engine gradient, no XLA (dynamic time)": (lambda u: L.LSTM(u), "auto", False, True),
    "lstm, engine gradient, no XLA (tensorarray)": (lambda u: L.LSTM(u), "tensorarray", True,
                                                    True),
    "gru, engine gradient, no XLA (tensorarray)": (lambda u: L.GRU(u), "tensorarray", True, True),
    "lstm peephole, TensorFlow gradient": (lambda u: L.LSTM(u, peephole=True), "auto", True,
                                           True),
    "jordan, TensorFlow gradient": (lambda u: L.Jordan(u, 16), "auto", True, True),
    "lstm inference, XLA": (lambda u: L.LSTM(u), "xla", True, False),
    "lstm inference, TensorFlow loop": (lambda u: L.LSTM(u), "tensorarray", True, False),
}


def step_function(make_layer, mode, fixed_time, training, shape, groups):
    """A compiled training step (or inference call), traced with ``groups`` row groups."""
    batch, steps, features, units = shape
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, features)), make_layer(units),
                              keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.0)
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, steps, features)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((batch, steps if fixed_time else None,
                                                 features))])
    def call(x):
        with L.scan_mode(mode):
            if not training:
                return model(x, training=False)
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                out = out[:, -1] if out.shape.rank == 3 else out
                loss = tf.reduce_mean(tf.square(out))
            gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    plan_loop = engine.plan_loop
    engine.plan_loop = lambda facts: dataclasses.replace(plan_loop(facts), row_groups=groups)
    try:
        with L.record_plans() as plans:
            call(x)
    finally:
        engine.plan_loop = plan_loop
    return (lambda: call(x).numpy()), plans[0][1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="64,100,64,128")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="", help="a regular expression: run the cases whose "
                                                    "name it matches (default all)")
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    columns = ["case", "loop", "round", "one loop ms", f"{args.groups} groups ms", "ratio"]
    print(common.header("row_groups") + f", load average {os.getloadavg()[0]:.1f}")
    print(common.table_head(columns), flush=True)
    for name, (make_layer, mode, fixed_time, training) in CASES.items():
        if not re.search(args.cases, name):
            continue
        one, plan = step_function(make_layer, mode, fixed_time, training, shape, 1)
        split, _ = step_function(make_layer, mode, fixed_time, training, shape, args.groups)
        for round_ in range(args.rounds):
            t_one, t_split = common.paired_median_seconds([one, split], args.repeats)
            row = {"case": name, "loop": plan.loop + (" (XLA)" if plan.jit else ""),
                   "round": round_, "one loop ms": f"{t_one * 1e3:.1f}",
                   f"{args.groups} groups ms": f"{t_split * 1e3:.1f}",
                   "ratio": f"{t_split / t_one:.2f}"}
            print(common.table_row(columns, row), flush=True)


if __name__ == "__main__":
    main()
