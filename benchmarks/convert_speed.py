"""What converting a Keras model costs and gains: kzoo.convert and export times, then the
converted model's training and inference time against the Keras original, in one process.

    python benchmarks/convert_speed.py [--shape B,T,F,U] [--layers N] [--repeats N]

The model is ``N`` stacked ``keras.layers.LSTM`` (default three, ``return_sequences`` between)
under a Dense(1), on a batch of shape (B, T, F) with U units. The first table: seconds of
``kzoo.convert``, ``kzoo.export.saved_model`` and ``kzoo.export.tflite`` (builtin ops) on it.
The second: milliseconds per training step (forward, gradients, SGD update) and per inference
call of the converted model and of the Keras model, each a compiled ``tf.function`` timed
after its first calls and interleaved with its twin, and their ratio (kzoo / Keras: below 1.0
means the converted model is faster), with the largest output difference of the two.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402
import kzoo  # noqa: E402
import kzoo.export  # noqa: E402

COST_COLUMNS = ["model", "(B, T, F, U)", "convert s", "saved_model s", "tflite s"]
SPEED_COLUMNS = ["model", "(B, T, F, U)", "kzoo train ms", "Keras train ms", "train ratio",
                 "kzoo infer ms", "Keras infer ms", "infer ratio", "max abs diff"]


def _shape(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected B,T,F,U (four positive integers), got "
                                         f"{text!r}")
    return values


def keras_lstm_model(shape, layers, seed=0):
    _, steps, features, units = shape
    keras.utils.set_random_seed(seed)
    body = [keras.layers.LSTM(units, return_sequences=k < layers - 1) for k in range(layers)]
    return keras.Sequential([keras.Input((None, features)), *body, keras.layers.Dense(1)],
                            name=f"lstm_x{layers}")


def seconds(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=_shape, default=(32, 100, 32, 64))
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.layers < 1 or args.repeats < 1:
        parser.error("--layers and --repeats must be positive")
    batch, steps, features, units = args.shape
    original = keras_lstm_model(args.shape, args.layers)
    x = np.random.default_rng(0).normal(size=(batch, steps, features)).astype("float32")
    converted, convert_s = seconds(lambda: kzoo.convert(original))
    with tempfile.TemporaryDirectory() as directory:
        _, saved_s = seconds(lambda: kzoo.export.saved_model(
            converted, os.path.join(directory, "serving")))
        _, tflite_s = seconds(lambda: kzoo.export.tflite(
            converted, os.path.join(directory, "model.tflite")))
    shape = f"({batch}, {steps}, {features}, {units})"
    print(common.header("convert_speed"))
    print()
    print(common.markdown(COST_COLUMNS, [{
        "model": original.name, "(B, T, F, U)": shape, "convert s": f"{convert_s:.2f}",
        "saved_model s": f"{saved_s:.2f}", "tflite s": f"{tflite_s:.2f}"}]))
    ours_train, ours_infer = common.step_functions(converted, x)
    theirs_train, theirs_infer = common.step_functions(original, x)
    diff = float(np.max(np.abs(ours_infer().numpy() - theirs_infer().numpy())))
    train = common.paired_median_seconds([ours_train, theirs_train], args.repeats)
    infer = common.paired_median_seconds([ours_infer, theirs_infer], args.repeats)
    print()
    print(common.markdown(SPEED_COLUMNS, [{
        "model": original.name, "(B, T, F, U)": shape,
        "kzoo train ms": f"{train[0] * 1e3:.1f}", "Keras train ms": f"{train[1] * 1e3:.1f}",
        "train ratio": f"{train[0] / train[1]:.2f}",
        "kzoo infer ms": f"{infer[0] * 1e3:.1f}", "Keras infer ms": f"{infer[1] * 1e3:.1f}",
        "infer ratio": f"{infer[0] / infer[1]:.2f}", "max abs diff": f"{diff:.1e}"}]))


if __name__ == "__main__":
    main()
