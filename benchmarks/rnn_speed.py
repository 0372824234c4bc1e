"""Train-step and inference time of kzoo LSTM/GRU against keras.layers.LSTM/GRU, in one process.

    python benchmarks/rnn_speed.py [--shape B,T,F,U ...] [--repeats N]

Prints one row per (cell, shape): milliseconds per call for kzoo and Keras and their ratio
(kzoo / Keras; below 1.0 means kzoo is faster). Both run as compiled tf.functions on the same
inputs; the first calls (tracing) are not timed.
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kzoo  # noqa: E402

PAIRS = {
    "lstm": (kzoo.layers.LSTM, keras.layers.LSTM),
    "gru": (kzoo.layers.GRU, keras.layers.GRU),
}


def timed(fn, repeats):
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def measure(layer_cls, shape, repeats, seed=0):
    batch, steps, features, units = shape
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((steps, features)), layer_cls(units),
                              keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.0)
    x = tf.constant(np.random.default_rng(seed).normal(size=(batch, steps, features)),
                    tf.float32)
    y = tf.zeros((batch, 1))

    @tf.function
    def infer():
        return model(x, training=False)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return (timed(lambda: train_step().numpy(), repeats),
            timed(lambda: infer().numpy(), repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append",
                        help="batch,time,features,units (repeatable); default 64,100,64,128")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cells", default="lstm,gru")
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shape or ["64,100,64,128"])]
    print(f"# kzoo {kzoo.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| cell | (B, T, F, U) | kzoo train ms | Keras train ms | train ratio "
          "| kzoo infer ms | Keras infer ms | infer ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for cell in args.cells.split(","):
        ours_cls, keras_cls = PAIRS[cell]
        for shape in shapes:
            ours_train, ours_infer = measure(ours_cls, shape, args.repeats)
            keras_train, keras_infer = measure(keras_cls, shape, args.repeats)
            print(f"| {cell} | {shape} | {ours_train:.1f} | {keras_train:.1f} | "
                  f"{ours_train / keras_train:.2f} | {ours_infer:.1f} | {keras_infer:.1f} | "
                  f"{ours_infer / keras_infer:.2f} |", flush=True)


if __name__ == "__main__":
    main()
