"""Peak memory of one training step (and of one inference call) of kzoo LSTM/GRU against
keras.layers.LSTM/GRU at a long sequence.

    python benchmarks/memory.py [--shape B,T,F,U ...] [--cells lstm,gru] [--modes train,infer]
                                [--runs 3] [--base-steps 10]

Default shape (batch, time, inputs, units) = (16, 1000, 32, 64). Each variant is
``Sequential([Input((T, F)), layer(U), Dense(1)])`` with SGD, run by a ``tf.function`` over
constant inputs, exactly as ``benchmarks/rnn_speed.py`` does (fixed shapes, so kzoo takes the
path it takes there).

Method (Linux): peak resident set size, a fresh subprocess per figure. The child builds the
model and inputs, records its resident size, resets the kernel's high-water mark
(``/proc/self/clear_refs`` "5") and makes the first call; its growth is ``VmHWM`` minus that
resident size. A first call also traces, optimizes and (for XLA paths) compiles the function,
whose memory does not depend on the sequence length, while the step's tensors grow with it; so
the same child runs at T and at ``--base-steps`` (default 10) and the table shows the
difference: the memory the call needs for its T - base steps. ``base`` columns show the
growth at the base length (mostly tracing and compiling) for reference. Each figure is the
median over ``--runs`` subprocesses.

Why not something simpler: a second call shows no growth at all, since TensorFlow's CPU
allocator keeps the pages of the first; ``tf.config.experimental.get_memory_info("CPU:0")``
works on CPU only through oneDNN's allocator, whose peak misses tensors under its
small-allocation threshold (a loop storing 1000 tensors of 16 KB shows only the final stacked
tensor), and those are what a recurrent layer keeps per step for its backward pass;
tracemalloc does not see TensorFlow's allocations at all. What the figure includes: everything
the process maps during the call (TensorFlow's allocators, oneDNN and XLA buffers, the Python
heap).
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODES = ("train", "infer")
LAYERS = ("kzoo", "keras")
COLUMNS = ("cell", "(B, T, F, U)", "mode", "kzoo MiB", "Keras MiB", "ratio", "kzoo base MiB",
           "Keras base MiB")


def _layer_class(cell, layer):
    import keras

    import kzoo

    module = kzoo.layers if layer == "kzoo" else keras.layers
    return getattr(module, cell.upper())


def child(cell, layer, mode, shape, seed=0):
    """Bytes the resident set grew by, at its peak, during the first call (see the module
    docstring). Runs in the subprocess."""
    import keras
    import numpy as np
    import tensorflow as tf

    batch, steps, features, units = shape
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((steps, features)), _layer_class(cell, layer)(units),
                              keras.layers.Dense(1)])
    x = tf.constant(np.random.default_rng(seed).normal(size=(batch, steps, features)),
                    tf.float32)
    from common import status_kib, step_functions

    train_step, infer = step_functions(model, x)

    gc.collect()
    resting = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    (train_step if mode == "train" else infer)().numpy()
    return (status_kib("VmHWM") - resting) * 1024


def measure(cell, layer, mode, shape):
    """Run :func:`child` in a fresh Python; returns its bytes."""
    command = [sys.executable, os.path.abspath(__file__), "--child",
               json.dumps({"cell": cell, "layer": layer, "mode": mode, "shape": shape})]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory.py child {cell}/{layer}/{mode} {shape} failed:\n"
                           f"{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["bytes"]


def median_bytes(cell, layer, mode, shape, runs):
    return statistics.median(measure(cell, layer, mode, list(shape)) for _ in range(runs))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append",
                        help="batch,time,features,units (repeatable); default 16,1000,32,64")
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per figure (median)")
    parser.add_argument("--base-steps", type=int, default=10,
                        help="the short length whose first-call growth is subtracted")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    try:
        args.shape = [tuple(int(v) for v in s.split(","))
                      for s in (args.shape or ["16,1000,32,64"])]
    except ValueError:
        parser.error(f"--shape must be four comma-separated integers, got {args.shape}")
    if any(len(s) != 4 or min(s) <= 0 for s in args.shape):
        parser.error(f"--shape must be four positive integers B,T,F,U, got {args.shape}")
    args.cells, args.modes = args.cells.split(","), args.modes.split(",")
    for option, values, choices in (("--cells", args.cells, ("lstm", "gru")),
                                    ("--modes", args.modes, MODES)):
        unknown = sorted(set(values) - set(choices))
        if unknown:
            parser.error(f"{option}: unknown {unknown}; choose from {list(choices)}")
    if args.runs <= 0:
        parser.error(f"--runs must be positive, got {args.runs}")
    if args.base_steps <= 0 or any(s[1] <= args.base_steps for s in args.shape):
        parser.error(f"--base-steps must be positive and below every shape's T, got "
                     f"{args.base_steps} for {args.shape}")
    if not os.path.exists("/proc/self/clear_refs"):
        parser.error("memory.py measures resident memory through /proc (Linux only)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps({"bytes": child(spec["cell"], spec["layer"], spec["mode"],
                                         tuple(spec["shape"]))}))
        return
    from common import header, table_head, table_row

    print(header("memory"))
    print(f"peak resident-set growth of the first call at T minus the same at "
          f"T={args.base_steps}, fresh process per figure, median of {args.runs}; MiB")
    print(table_head(COLUMNS))
    mib = 1 << 20
    for cell in args.cells:
        for shape in args.shape:
            base_shape = (shape[0], args.base_steps, *shape[2:])
            for mode in args.modes:
                row = {"cell": cell, "(B, T, F, U)": shape, "mode": mode}
                growth = {}
                for layer, name in (("kzoo", "kzoo"), ("keras", "Keras")):
                    base = median_bytes(cell, layer, mode, base_shape, args.runs)
                    growth[layer] = median_bytes(cell, layer, mode, shape, args.runs) - base
                    row[f"{name} MiB"] = f"{growth[layer] / mib:.1f}"
                    row[f"{name} base MiB"] = f"{base / mib:.1f}"
                row["ratio"] = f"{growth['kzoo'] / growth['keras']:.2f}" \
                    if growth["keras"] > 0 else "nan"
                print(table_row(COLUMNS, row), flush=True)


if __name__ == "__main__":
    main()
