"""LiteRT inference time of a kzoo ``many_to_one_lstm`` TFLite file against the same LSTM built
in ``tf_keras`` (Keras 2), whose converter emits the fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op,
in one process.

    python benchmarks/tflite_speed.py [--steps 100] [--scaling 100,1000,4000] [--features 32]
                                      [--units 64] [--repeats 200] [--threads 1]

The kzoo model (``kzoo.build("many_to_one_lstm", input_dim=F, units=U, num_classes=10)``) is
written by ``kzoo.export.tflite`` (float, and quantize "dynamic", "float16", "int8"); its twin
is ``tf_keras.Sequential([InputLayer((T, F), batch_size=1), LSTM(U), Dense(10, softmax)])`` with
the kzoo weights copied in (same gate order), converted by ``tf.lite.TFLiteConverter
.from_keras_model`` with the same quantization settings as kzoo's. Both run at batch 1 in
``ai_edge_litert.interpreter.Interpreter`` with ``--threads`` threads; inputs are set once and
only ``Invoke`` is timed (median of ``--repeats`` after two untimed calls, the two files' calls
alternating so that a passing load on a shared machine hits both). The kzoo file runs
its ``with_lengths`` signature (``inputs`` and ``lengths`` = T), the one a padded batch of
sequences of several lengths is served through. The float outputs of both
files must agree with the Keras 3 model within 1e-4, else the script stops; the ``max abs diff``
columns show each file's distance from the Keras 3 model.

Tables: (1) µs per call at T=``--steps`` and the ratio kzoo / tf_keras (the issue's bar: float
<= 1.0); (2) the float files' µs per step at every ``--scaling`` length, all lengths timed in
the same rounds, and the kzoo per-step time relative to the first length (bar: <= 1.5 at
T=4000); (3) a profile by ablation, since the Python interpreter has no op profiler: the ops
one step of kzoo's ``WHILE`` bodies runs (read from the flatbuffer) and the per-step time of
each signature of the same file: ``serving_default`` (the Keras inputs only: no masking ops),
``with_lengths`` (masked by ``lengths``) and ``stream`` (``lengths`` and zero initial states).
"""

import argparse
import collections
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kzoo  # noqa: E402
import kzoo.export  # noqa: E402
from kzoo.choices import QUANTIZE_MODES  # noqa: E402
from kzoo.export.signatures import LENGTHS_SIGNATURE  # noqa: E402

from common import header, markdown, paired_median_seconds  # noqa: E402

NUM_CLASSES = 10
FLOAT_TOLERANCE = 1e-4
SPEED_COLUMNS = ("variant", "kzoo µs", "tf_keras fused µs", "ratio", "kzoo KB", "tf_keras KB",
                 "kzoo max abs diff", "tf_keras max abs diff")
SCALING_COLUMNS = ("T", "kzoo µs", "kzoo µs/step", "kzoo per-step vs first T",
                   "tf_keras fused µs/step", "kzoo / fused per step")
PROFILE_COLUMNS = ("kzoo loop (float, T={steps})", "ops per step", "µs/step",
                   "op mix per step")


def import_tf_keras():
    try:
        import tf_keras
    except ImportError as error:
        raise SystemExit("tflite_speed needs tf_keras (Keras 2) for the fused-op reference: "
                         "pip install -e '.[test]' installs it") from error
    return tf_keras


class Runner:
    """One signature of a TFLite file in the LiteRT interpreter, its inputs set once."""

    def __init__(self, content, feed, threads, signature="serving_default"):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content, num_threads=threads)
        runner = self.interpreter.get_signature_runner(signature)
        names = list(self.interpreter.get_signature_list()[signature]["inputs"])
        if len(names) == 1 and len(feed) == 1:  # tf_keras names its input after the layer
            feed = {names[0]: next(iter(feed.values()))}
        # The first call resizes, allocates and sets the inputs; later Invokes reuse them.
        outputs = runner(**feed)
        self.output = next(iter(outputs.values()))
        # SignatureRunner.__call__ would resize and allocate again on every call: time the
        # subgraph's Invoke alone, which is what both files spend their time in.
        self.invoke = lambda: runner._interpreter_wrapper.Invoke(runner._subgraph_index)


def paired_us(runners, repeats):
    """Median µs per Invoke of each runner, their calls interleaved (see common.py)."""
    return [seconds * 1e6 for seconds in
            paired_median_seconds([r.invoke for r in runners], repeats)]


def kzoo_model(features, units, seed=0):
    keras.utils.set_random_seed(seed)
    return kzoo.build("many_to_one_lstm", input_dim=features, units=units,
                      num_classes=NUM_CLASSES)


class Files:
    """The TFLite files of one kzoo model and of its tf_keras twin, each converted once."""

    def __init__(self, model, features, units, directory, representative):
        self.model, self.features, self.units = model, features, units
        self.directory, self.representative = directory, representative
        self._cache = {}

    def kzoo(self, quantize):
        """``kzoo.export.tflite`` of the model (int8 calibrated on ``representative``)."""
        key = ("kzoo", quantize)
        if key not in self._cache:
            path = os.path.join(self.directory, f"kzoo_{quantize or 'float'}.tflite")
            kzoo.export.tflite(self.model, path, quantize=quantize,
                               representative_data=self.representative
                               if quantize == "int8" else None)
            with open(path, "rb") as handle:
                self._cache[key] = handle.read()
        return self._cache[key]

    def tf_keras(self, steps, quantize):
        """The tf_keras twin at a fixed (1, steps) input with the kzoo weights, converted with
        kzoo's quantization settings (see kzoo.export.lite.convert_signatures)."""
        key = ("tf_keras", steps, quantize)
        if key not in self._cache:
            self._cache[key] = self._convert_twin(steps, quantize)
        return self._cache[key]

    def _convert_twin(self, steps, quantize):
        tf_keras = import_tf_keras()
        twin = tf_keras.Sequential([
            tf_keras.layers.InputLayer(input_shape=(steps, self.features), batch_size=1),
            tf_keras.layers.LSTM(self.units),
            tf_keras.layers.Dense(NUM_CLASSES, activation="softmax")])
        twin.set_weights(self.model.get_weights())  # same layout and gate order (i, f, c, o)
        converter = tf.lite.TFLiteConverter.from_keras_model(twin)
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            # The twin's input length is fixed: calibrate on the same data, cut or tiled to it.
            samples = [np.resize(x, (1, steps, self.features)) for x in self.representative]
            converter.representative_dataset = lambda: ([x] for x in samples)
        content = converter.convert()
        if "UNIDIRECTIONAL_SEQUENCE_LSTM" not in loop_ops(content, whole_file=True):
            raise RuntimeError(f"the tf_keras conversion (quantize={quantize}) has no fused "
                               f"UNIDIRECTIONAL_SEQUENCE_LSTM op: not the reference the issue "
                               f"asks for")
        return content


def _op_names():
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def loop_ops(content, signature="serving_default", whole_file=False):
    """Op name counts of the ``WHILE`` bodies a signature runs (all ops when ``whole_file``),
    read from the flatbuffer; the bodies of nested loops are included."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    names = _op_names()

    def name(op):
        code = model.operatorCodes[op.opcodeIndex]
        return names[max(code.builtinCode, code.deprecatedBuiltinCode)]

    if whole_file:
        return collections.Counter(name(op) for g in model.subgraphs for op in g.operators)
    start = next(s.subgraphIndex for s in model.signatureDefs
                 if s.signatureKey.decode() == signature)
    counts, pending = collections.Counter(), [start]
    while pending:
        graph = model.subgraphs[pending.pop()]
        for op in graph.operators:
            if isinstance(op.builtinOptions, schema.WhileOptionsT):
                body = op.builtinOptions.bodySubgraphIndex
                counts.update(name(o) for o in model.subgraphs[body].operators)
                pending.append(body)
    return counts


def check_float(label, output, reference):
    error = float(np.abs(output - reference).max())
    if error > FLOAT_TOLERANCE:
        raise RuntimeError(f"{label} float output differs from the Keras 3 model by {error:.2e} "
                           f"(> {FLOAT_TOLERANCE}): the two files do not compute the same "
                           f"function")
    return error


def _timing_cell(side):
    return "tf_keras fused µs" if side == "tf_keras" else "kzoo µs"


def speed_rows(files, args, inputs, quantize_modes):
    """Table 1: one row per quantization mode, kzoo against tf_keras at T=args.steps."""
    reference = files.model(inputs).numpy()
    feeds = {"kzoo": {"inputs": inputs, "lengths": np.array([args.steps], np.int32)},
             "tf_keras": {"inputs": inputs}}
    signature = {"kzoo": LENGTHS_SIGNATURE, "tf_keras": "serving_default"}
    rows = []
    for quantize in quantize_modes:
        row, runners = {"variant": quantize or "float", "ratio": "-"}, {}
        for side in ("kzoo", "tf_keras"):
            content = files.kzoo(quantize) if side == "kzoo" else \
                files.tf_keras(args.steps, quantize)
            row[f"{side} KB"] = f"{len(content) / 1024:.0f}"
            try:
                runner = Runner(content, feeds[side], args.threads, signature[side])
            except RuntimeError as error:
                # A file LiteRT refuses is a result too: say so in the table and go on.
                row[_timing_cell(side)] = f"fails to load: {str(error).split('.')[0]}"
                row[f"{side} max abs diff"] = "-"
                continue
            if quantize is None:
                error = check_float(side, runner.output, reference)
            else:
                error = float(np.abs(runner.output - reference).max())
            row[f"{side} max abs diff"] = f"{error:.1e}"
            runners[side] = runner
        times = dict(zip(runners, paired_us(list(runners.values()), args.repeats)))
        for side, us in times.items():
            row[_timing_cell(side)] = f"{us:.0f}"
        if len(times) == 2:
            row["ratio"] = f"{times['kzoo'] / times['tf_keras']:.2f}"
        rows.append(row)
    return rows


def _repeated(fn, calls):
    def run():
        for _ in range(calls):
            fn()
    return run


def scaling_rows(files, args, rng):
    """Table 2: the float files' time per step at every length of ``args.scaling``.

    All lengths are timed in the same rounds (each round invokes every file at every length,
    the shorter ones several times, so that every length runs about as many steps): a load
    that comes and goes on the machine then weighs on every length alike, and the per-step
    ratio between lengths holds."""
    longest = max(args.scaling)
    fns, runs = [], []
    for steps in args.scaling:
        inputs = rng.normal(size=(1, steps, files.features)).astype(np.float32)
        ours = Runner(files.kzoo(None), {"inputs": inputs,
                                         "lengths": np.array([steps], np.int32)}, args.threads,
                      LENGTHS_SIGNATURE)
        theirs = Runner(files.tf_keras(steps, None), {"inputs": inputs}, args.threads)
        calls = max(1, longest // steps)
        for runner in (ours, theirs):
            fns.append(_repeated(runner.invoke, calls))
            runs.append(calls * steps)
    rounds = max(20, args.repeats * args.steps // longest)
    per_step = [seconds * 1e6 / n for seconds, n in
                zip(paired_median_seconds(fns, rounds), runs)]
    rows = []
    for k, steps in enumerate(args.scaling):
        ours_step, theirs_step = per_step[2 * k], per_step[2 * k + 1]
        rows.append({"T": steps, "kzoo µs": f"{ours_step * steps:.0f}",
                     "kzoo µs/step": f"{ours_step:.2f}",
                     "kzoo per-step vs first T": f"{ours_step / per_step[0]:.2f}",
                     "tf_keras fused µs/step": f"{theirs_step:.2f}",
                     "kzoo / fused per step": f"{ours_step / theirs_step:.2f}"})
    return rows


def profile_rows(files, args, inputs):
    """Table 3: per-step time and op mix of the float kzoo file's loops, ``serving_default``
    (no masking), ``with_lengths`` (which masks steps by ``lengths``) and ``stream`` (zero
    initial states)."""
    content = files.kzoo(None)
    zeros = np.zeros([1, files.units], np.float32)
    lengths = np.array([args.steps], np.int32)
    feeds = {"serving_default": {"inputs": inputs},
             LENGTHS_SIGNATURE: {"inputs": inputs, "lengths": lengths},
             "stream": {"inputs": inputs, "lengths": lengths, "initial_state_1_0": zeros,
                        "initial_state_1_1": zeros}}
    runners = [Runner(content, feed, args.threads, signature)
               for signature, feed in feeds.items()]
    rows = []
    for signature, us in zip(feeds, paired_us(runners, args.repeats)):
        counts = loop_ops(content, signature)
        # Each step of a body runs one recurrent FULLY_CONNECTED (the input projection is
        # outside the loop), so they count the steps the bodies hold (the unroll factor).
        steps = max(1, counts["FULLY_CONNECTED"])
        mix = ", ".join(f"{name} {count / steps:.2g}" for name, count in counts.most_common())
        rows.append({PROFILE_COLUMNS[0].format(steps=args.steps): signature,
                     "ops per step": f"{sum(counts.values()) / steps:.1f}",
                     "µs/step": f"{us / args.steps:.2f}", "op mix per step": mix})
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--scaling", default="100,1000,4000",
                        help="comma-separated sequence lengths for the scaling table")
    parser.add_argument("--quantize", default="float,dynamic,float16,int8",
                        help="comma-separated variants for the first table")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for name in ("steps", "features", "units", "repeats", "threads"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    try:
        args.scaling = [int(v) for v in args.scaling.split(",")]
    except ValueError:
        parser.error(f"--scaling must be comma-separated integers, got {args.scaling!r}")
    if min(args.scaling) <= 0:
        parser.error(f"--scaling lengths must be positive, got {args.scaling}")
    names = {"float": None, **{q: q for q in QUANTIZE_MODES if q}}
    unknown = sorted(set(args.quantize.split(",")) - set(names))
    if unknown:
        parser.error(f"--quantize: unknown {unknown}; choose from {sorted(names)}")
    args.quantize = [names[q] for q in args.quantize.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    import_tf_keras()
    rng = np.random.default_rng(0)
    model = kzoo_model(args.features, args.units)
    inputs = rng.normal(size=(1, args.steps, args.features)).astype(np.float32)
    representative = [rng.normal(size=(1, args.steps, args.features)).astype(np.float32)
                      for _ in range(16)]
    print(header("tflite_speed"))
    print(f"many_to_one_lstm, batch 1, T={args.steps}, {args.features} inputs, {args.units} "
          f"units, {NUM_CLASSES} classes; LiteRT, {args.threads} thread(s); median of "
          f"{args.repeats} Invokes")
    with tempfile.TemporaryDirectory() as directory:
        files = Files(model, args.features, args.units, directory, representative)
        for table in (markdown(SPEED_COLUMNS, speed_rows(files, args, inputs, args.quantize)),
                      markdown(SCALING_COLUMNS, scaling_rows(files, args, rng)),
                      markdown([c.format(steps=args.steps) for c in PROFILE_COLUMNS],
                               profile_rows(files, args, inputs))):
            print()
            print(table, flush=True)


if __name__ == "__main__":
    main()
