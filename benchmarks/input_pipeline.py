"""The input pipeline of a file of sentence pairs against what training the translator consumes,
and its peak memory as the file grows.

    python benchmarks/input_pipeline.py [--sizes 10MB,100MB] [--batch 64] [--units 64]
                                        [--batches 200] [--steps 20] [--keep DIR]

For each size a tab-separated file of that many bytes is generated (synthetic sentence pairs
over a 5000-word vocabulary, 3-12 words a side) into a temporary folder, deleted afterwards
(``--keep DIR`` writes into DIR and keeps it). ``--sizes 10MB,1GB`` is the streaming claim: 1 GB
takes a few minutes to generate and to read.

One fresh subprocess per size runs ``kzoo.datasets.from_text_pairs`` (the checking pass over
the whole file, which counts the train split's tokens) and then pulls ``--batches`` batches of
the train split (shuffled, bucketed by length, prefetched) after 20 untimed ones; the table
shows the pipeline's examples per second, the checking pass' seconds and megabytes per second,
and the subprocess' peak resident memory (``VmHWM``) and its growth over the resident memory
after importing kzoo. The subprocess of the first size then times ``--steps``
training steps of ``seq2seq_attention`` (``--units``) on batches of that file, in examples per
second: the pipeline must feed at least 10 times that (the ``ratio`` column).
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COLUMNS = ("file MB", "pairs", "scan s", "scan MB/s", "pipeline ex/s", "training ex/s",
           "ratio", "peak MiB", "growth MiB")
UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_size(text):
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[:-len(unit)]) * factor)
    return int(text)


def generate(path, size, seed=0):
    """A tab-separated file of about ``size`` bytes of synthetic sentence pairs: the target is
    the source's words, each mapped to its own target word, in reverse order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    source_words = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(5000)]
    target_words = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(5000)]
    # Zipf-like word frequencies, as in real text.
    weights = 1.0 / np.arange(1, 5001)
    weights /= weights.sum()
    written = 0
    lines = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < size:
            lengths = rng.integers(3, 13, size=max(1, min(2000, (size - written) // 80)))
            ids = rng.choice(5000, size=int(lengths.sum()), p=weights)
            chunk, start = [], 0
            for length in lengths:
                sentence = ids[start:start + length]
                start += length
                chunk.append(" ".join(source_words[i] for i in sentence) + "\t" +
                             " ".join(target_words[i] for i in sentence[::-1]) + "\n")
            text = "".join(chunk)
            handle.write(text)
            written += len(text)
            lines += len(chunk)
    return lines


def child_pipeline(path, batch, batches):
    """The checking pass and the train split's batches of ``path``: speeds and memory."""
    import kzoo.datasets as kd
    from common import status_kib

    baseline = status_kib("VmRSS")
    start = time.perf_counter()
    data, info = kd.from_text_pairs(path, batch_size=batch)
    scan = time.perf_counter() - start
    iterator = iter(data.repeat())
    for _ in range(min(20, batches)):
        next(iterator)
    examples = 0
    start = time.perf_counter()
    for _ in range(batches):
        examples += int(next(iterator)[1].shape[0])
    seconds = time.perf_counter() - start
    return {"pairs": sum(info.statistics["rows"].values()), "scan_s": scan,
            "pipeline": examples / seconds, "peak_kib": status_kib("VmHWM"),
            "growth_kib": status_kib("VmHWM") - baseline}


def child_training(path, batch, units, steps):
    """Training examples per second of the translator on batches of ``path`` (run after the
    pipeline's figures of the same subprocess are taken)."""
    import keras

    import kzoo
    import kzoo.datasets as kd

    data, info = kd.from_text_pairs(path, batch_size=batch)
    # Fixed batches, taken first, so that the timing holds training alone.
    batches = list(data.take(steps + 3))
    model = kzoo.build("seq2seq_attention", **info.model_config, units=units)
    model.compile(keras.optimizers.Adam(1e-3),
                  **kzoo.models.compile_args("seq2seq_attention", **info.model_config))
    for inputs, targets in batches[:3]:
        model.train_on_batch(inputs, targets)
    examples = 0
    start = time.perf_counter()
    for inputs, targets in batches[3:]:
        model.train_on_batch(inputs, targets)
        examples += int(targets.shape[0])
    return {"training": examples / (time.perf_counter() - start)}


def run_child(spec):
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"input_pipeline: the subprocess of {spec['path']} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10MB,100MB",
                        help="comma-separated file sizes, e.g. 10MB,1GB (default 10MB,100MB)")
    parser.add_argument("--batch", type=int, default=64, help="examples per batch (64)")
    parser.add_argument("--units", type=int, default=64, help="the translator's units (64)")
    parser.add_argument("--batches", type=int, default=200,
                        help="timed batches of the pipeline (200)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (20)")
    parser.add_argument("--keep", default=None, help="write the files into this folder and "
                                                     "keep them")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: sizes like 10MB or 1GB, got {args.sizes!r}")
    if any(s < 10_000 for s in args.sizes):
        parser.error("--sizes: each file must be at least 10KB")
    for name in ("batch", "units", "batches", "steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        result = child_pipeline(spec["path"], spec["batch"], spec["batches"])
        if spec["training"]:
            result.update(child_training(spec["path"], spec["batch"], spec["units"],
                                         spec["steps"]))
        print(json.dumps(result))
        return
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from common import header, table_head, table_row

    print(header("input_pipeline"))
    print(f"sentence pairs (tab-separated) -> from_text_pairs train batches of {args.batch}; "
          f"training: seq2seq_attention, {args.units} units")
    folder = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    try:
        files = []
        for size in args.sizes:
            path = folder / f"pairs_{size}.tsv"
            generate(path, size)
            files.append(path)
        print(table_head(COLUMNS))
        training = None
        for path in files:
            result = run_child({"path": str(path), "batch": args.batch, "units": args.units,
                                "batches": args.batches, "steps": args.steps,
                                "training": training is None})
            training = result.get("training", training)
            megabytes = path.stat().st_size / 1e6
            row = {"file MB": f"{megabytes:.0f}" if megabytes >= 1 else f"{megabytes:.2f}",
                   "pairs": str(result["pairs"]), "scan s": f"{result['scan_s']:.1f}",
                   "scan MB/s": f"{megabytes / result['scan_s']:.1f}",
                   "pipeline ex/s": f"{result['pipeline']:.0f}",
                   "training ex/s": f"{training:.0f}",
                   "ratio": f"{result['pipeline'] / training:.1f}",
                   "peak MiB": f"{result['peak_kib'] / 1024:.0f}",
                   "growth MiB": f"{result['growth_kib'] / 1024:.0f}"}
            print(table_row(COLUMNS, row), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
