"""Tokens per second of seq2seq decoding in the exported SavedModel: the in-graph search loops
(``serving_default`` greedy, ``beam_search`` beam 4) against a Python loop that calls the same
SavedModel's ``encode`` once and ``decode_step`` once per token, in one process.

    python benchmarks/decode_speed.py [--models seq2seq_attention,seq2seq_lstm] [--batch 1 ...]
                                      [--max-length 40] [--repeats 10] [--max-number 10000]

The models are built from the ``number_words`` dataset's ``model_config`` (untrained weights)
and fed the first source rows of its test split. So that every decode runs exactly
``--max-length`` steps, the output layer's biases of the end token and of padding (id 0) are set
to -1e4: no hypothesis ever finishes early, and the script checks that every row of the in-graph
result has length ``max_length``. Tokens counted: ``batch * max_length`` emitted tokens (for
beam, those of the best hypothesis; each step runs ``batch * 4`` decoder rows in both loops).

The Python loops do what an app driving ``decode_step`` would: greedy takes the argmax in NumPy;
beam keeps ``(batch, 4)`` hypotheses, adds NumPy log-softmax scores, takes the top 4 of the
``4 * vocab`` candidates per row and reorders the states by their parents (the same search as
``kzoo.models.decoding.beam_search`` without penalties; finished hypotheses are frozen the same
way). The ``same`` column says whether the Python loop emitted the same tokens as the graph.
Times are medians of ``--repeats`` calls after two untimed ones, the in-graph and the Python
calls alternating (so a passing load on the machine hits both); ``speed-up`` is Python-loop
time / in-graph time (the issue's bar: at least 5).
"""

import argparse
import contextlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kzoo  # noqa: E402
import kzoo.datasets  # noqa: E402
import kzoo.export  # noqa: E402
from kzoo.export.serving import TARGETS  # noqa: E402
from kzoo.models.seq2seq import DEFAULT_BEAM_WIDTH as BEAM_WIDTH  # noqa: E402
from kzoo.models.decoding import NEG_INF  # noqa: E402

from common import header, paired_median_seconds, table_head, table_row  # noqa: E402

SUPPRESSED_LOGIT = -1e4
COLUMNS = ("model", "method", "batch", "max_length", "tokens", "in-graph ms", "in-graph tok/s",
           "Python loop ms", "Python loop tok/s", "speed-up", "same")


def source_batch(batch_size, max_number, data_dir):
    """``(source_ids (batch_size, Ts) int32, model_config)`` from the number_words test split."""
    # TFDS announces a first preparation on stdout; keep stdout for the table.
    with contextlib.redirect_stdout(sys.stderr):
        data, info = kzoo.datasets.load("number_words", split="test", batch_size=batch_size,
                                        shuffle=False, data_dir=data_dir, max_number=max_number)
    (source_ids, _), _ = next(iter(data))
    if source_ids.shape[0] < batch_size:
        raise ValueError(f"number_words (max_number={max_number}) has only "
                         f"{source_ids.shape[0]} test examples; ask for a smaller --batch")
    return source_ids.numpy().astype(np.int32), dict(info.model_config)


def never_finishing(name, config, seed=0):
    """``kzoo.build(name, **config)`` whose logits of padding and of the end token are
    -1e4, so greedy and beam search always run to ``max_length``."""
    keras.utils.set_random_seed(seed)
    model = kzoo.build(name, **config)
    bias = model.output_layer.bias
    values = bias.numpy()
    values[[0, model.end_id]] = SUPPRESSED_LOGIT
    bias.assign(values)
    return model


class Served:
    """The four seq2seq signatures of an exported SavedModel, called as an app would."""

    def __init__(self, directory):
        loaded = tf.saved_model.load(directory)
        self._loaded = loaded  # the signatures need the object that owns the variables alive
        self.greedy = loaded.signatures["serving_default"]
        self.beam = loaded.signatures["beam_search"]
        self.encode = loaded.signatures["encode"]
        self.step = loaded.signatures["decode_step"]
        self.state_names = sorted((k for k in self.encode.structured_outputs
                                   if k.startswith("state_")), key=lambda k: int(k[6:]))


def in_graph(served, method, source_ids, max_length):
    """Tokens (B, max_length) of the best hypothesis, decoded by one signature call."""
    signature = served.greedy if method == "greedy" else served.beam
    result = signature(source_ids=tf.constant(source_ids),
                       max_length=tf.constant(max_length, tf.int32))
    lengths = result["lengths"].numpy()
    if not (lengths == max_length).all():
        raise RuntimeError(f"{method} decode stopped before max_length={max_length} (lengths "
                           f"{lengths.ravel().tolist()}): token counts would not be comparable")
    return result["tokens"].numpy()


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def python_greedy(served, source_ids, max_length, start_id):
    """Greedy decode by ``encode`` + one ``decode_step`` call per token."""
    encoded = served.encode(source_ids=tf.constant(source_ids))
    fixed = {k: encoded[k] for k in ("memory", "keys", "memory_mask")}
    states = {k: encoded[k] for k in served.state_names}
    ids = np.full([source_ids.shape[0]], start_id, np.int32)
    tokens = np.zeros([source_ids.shape[0], max_length], np.int32)
    for t in range(max_length):
        out = served.step(token_ids=tf.constant(ids), **fixed, **states)
        ids = np.argmax(out["logits"].numpy(), -1).astype(np.int32)
        tokens[:, t] = ids
        states = {k: out[k] for k in served.state_names}
    return tokens


def python_beam(served, source_ids, max_length, start_id, end_id, k=BEAM_WIDTH):
    """Beam search (width ``k``, no penalties) by ``encode`` + one ``decode_step`` call per
    step on ``batch * k`` rows, the search itself in NumPy."""
    batch = source_ids.shape[0]
    encoded = served.encode(source_ids=tf.constant(source_ids))
    fixed = {key: tf.constant(np.repeat(encoded[key].numpy(), k, axis=0))
             for key in ("memory", "keys", "memory_mask")}
    states = {key: np.repeat(encoded[key].numpy(), k, axis=0) for key in served.state_names}
    ids = np.full([batch * k], start_id, np.int32)
    tokens = np.zeros([batch, k, max_length], np.int32)
    log_probs = np.tile(np.where(np.arange(k) == 0, 0.0, NEG_INF).astype(np.float32), (batch, 1))
    finished = np.zeros([batch, k], bool)
    rows = np.arange(batch)[:, None]
    for t in range(max_length):
        out = served.step(token_ids=tf.constant(ids), **fixed,
                          **{key: tf.constant(value) for key, value in states.items()})
        step = _log_softmax(out["logits"].numpy()).reshape(batch, k, -1)
        vocab = step.shape[-1]
        frozen = np.where(np.arange(vocab) == 0, 0.0, NEG_INF).astype(np.float32)
        step = np.where(finished[:, :, None], frozen, step)
        total = (log_probs[:, :, None] + step).reshape(batch, -1)
        best = np.argpartition(-total, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(best, np.argsort(-np.take_along_axis(total, best, 1), 1), 1)
        parents, next_ids = best // vocab, (best % vocab).astype(np.int32)
        log_probs = np.take_along_axis(total, best, 1)
        parent_finished = finished[rows, parents]
        tokens = tokens[rows, parents]
        tokens[:, :, t] = np.where(parent_finished, 0, next_ids)
        finished = parent_finished | (next_ids == end_id)
        states = {key: out[key].numpy().reshape(batch, k, -1)[rows, parents]
                  .reshape(batch * k, -1) for key in served.state_names}
        ids = next_ids.reshape(-1)
    return tokens[:, 0]


def measure(served, method, source_ids, max_length, model, repeats):
    """One table row (a dict by column) for ``method`` at this batch."""
    if method == "greedy":
        loop = lambda: python_greedy(served, source_ids, max_length,  # noqa: E731
                                     model.start_id)
    else:
        loop = lambda: python_beam(served, source_ids, max_length,  # noqa: E731
                                   model.start_id, model.end_id)
    graph_tokens = in_graph(served, method, source_ids, max_length)
    same = bool((loop() == graph_tokens).all())
    graph_s, loop_s = paired_median_seconds(
        [lambda: in_graph(served, method, source_ids, max_length), loop], repeats)
    graph_ms, loop_ms = graph_s * 1e3, loop_s * 1e3
    tokens = source_ids.shape[0] * max_length
    return {"model": model.name, "method": method if method == "greedy" else
            f"beam {BEAM_WIDTH}", "batch": source_ids.shape[0], "max_length": max_length,
            "tokens": tokens, "in-graph ms": f"{graph_ms:.1f}",
            "in-graph tok/s": f"{tokens / graph_ms * 1e3:.0f}",
            "Python loop ms": f"{loop_ms:.1f}",
            "Python loop tok/s": f"{tokens / loop_ms * 1e3:.0f}",
            "speed-up": f"{loop_ms / graph_ms:.1f}", "same": "yes" if same else "no"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="seq2seq_attention,seq2seq_lstm")
    parser.add_argument("--methods", default="greedy,beam")
    parser.add_argument("--batch", type=int, action="append",
                        help="batch size (repeatable); default 1 and 32")
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--max-number", type=int, default=10000,
                        help="number_words option: numbers below this")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir (default: TFDS')")
    parser.add_argument("--target", default="cpu", choices=TARGETS,
                        help="kzoo.export.saved_model target (gpu: XLA-compiled encoder and "
                             "decoder step, which runs on a CPU too)")
    args = parser.parse_args(argv)
    batches = args.batch or [1, 32]
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - {"greedy", "beam"})
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from greedy, beam")
    for option, value in (("--max-length", args.max_length), ("--repeats", args.repeats),
                          ("--batch", min(batches))):
        if value <= 0:
            parser.error(f"{option} must be positive, got {value}")
    sources, config = source_batch(max(batches), args.max_number, args.data_dir)
    print(header("decode_speed"))
    print(f"number_words (max_number={args.max_number}) test sources, {sources.shape[1]} source "
          f"steps at most, vocabularies {config['source_vocab_size']} -> "
          f"{config['target_vocab_size']}; untrained weights, end token suppressed; SavedModel "
          f"(target={args.target}) signatures called eagerly; median of {args.repeats}")
    print(table_head(COLUMNS))
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            model = never_finishing(name, config)
            served = Served(kzoo.export.saved_model(model, os.path.join(scratch, name),
                                                     target=args.target))
            for method in methods:
                for batch in batches:
                    row = measure(served, method, sources[:batch], args.max_length, model,
                                  args.repeats)
                    print(table_row(COLUMNS, row), flush=True)


if __name__ == "__main__":
    main()
