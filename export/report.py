"""``kzoo.export.verify``: how closely exported artifacts follow the Keras model, and their cost.

For each artifact (a SavedModel directory, or a ``.tflite`` file) the report gives the largest
absolute difference of ``serving_default``'s outputs to the Keras model on the samples, for
seq2seq the fraction of decoded tokens equal to ``model.generate``'s, the file size (for TFLite
also the part of it that is weights), the median
latency of one call on the samples, the TFLite op list, and when targets are given the metric
(accuracy for class ids, mean absolute error for real targets) of the artifact next to Keras'.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from kzoo import quiet
from kzoo.export import lite
from kzoo.export.signatures import check_exportable, is_seq2seq, served_model, signatures

LATENCY_RUNS = 5


@dataclasses.dataclass
class ArtifactReport:
    """One artifact's line of an :class:`ExportReport` (made by ``kzoo.export.verify``).

    Attributes:
        path: the artifact's absolute path (a SavedModel version directory or a file).
        kind: ``"saved_model"`` or ``"tflite"``.
        size_bytes: the size of the file, or of every file of the SavedModel directory.
        max_abs_diff: the largest absolute difference of ``serving_default``'s outputs to the
            Keras model's (seq2seq: of the greedy scores); ``inf`` when the shapes differ.
        latency_ms: the median time of one ``serving_default`` call on the samples.
        ops: the TFLite op names, sorted (None for a SavedModel).
        weight_bytes: TFLite: the bytes of constant tensor data, i.e. the weights (None for a
            SavedModel).
        tokens_equal: seq2seq: the fraction of greedy tokens equal to ``model.generate``'s.
        metric: the artifact's metric on the targets (None without targets).
        metric_change: ``metric`` minus Keras' metric.
    """

    path: str
    kind: str                      # "saved_model" or "tflite"
    size_bytes: int
    max_abs_diff: float            # of serving_default's outputs (seq2seq: the scores)
    latency_ms: float              # median of one call on the samples
    ops: list = None               # TFLite op names (None for a SavedModel)
    weight_bytes: int = None       # TFLite: constant tensor data (None for a SavedModel)
    tokens_equal: float = None     # seq2seq: fraction of greedy tokens equal to Keras'
    metric: float = None           # the artifact's metric on the targets
    metric_change: float = None    # artifact metric - Keras metric

    @property
    def name(self):
        return os.path.basename(self.path.rstrip(os.sep)) if self.kind == "tflite" else \
            os.path.join(*self.path.rstrip(os.sep).split(os.sep)[-2:])


@dataclasses.dataclass
class ExportReport:
    """What ``kzoo.export.verify`` returns; ``str(report)`` is a table, ``report[path]`` the
    :class:`ArtifactReport` of the artifact at ``path``.

    Attributes:
        model_name: the Keras model's name.
        num_samples: how many samples (rows) were compared.
        keras_latency_ms: the median time of one Keras call on the samples.
        metric_name: ``"accuracy"``, ``"mae"``, or None without targets.
        keras_metric: the Keras model's metric on the targets.
        artifacts: the :class:`ArtifactReport` of each artifact, in the order given.
    """

    model_name: str
    num_samples: int
    keras_latency_ms: float
    metric_name: str = None        # "accuracy", "mae", or None without targets
    keras_metric: float = None
    artifacts: list = dataclasses.field(default_factory=list)

    def __getitem__(self, path):
        path = os.path.abspath(os.fspath(path))
        for artifact in self.artifacts:
            if artifact.path == path:
                return artifact
        raise KeyError(path)

    def __str__(self):
        header = ["artifact", "kind", "size", "weights", "max |diff|", "latency ms"]
        seq2seq = any(a.tokens_equal is not None for a in self.artifacts)
        if seq2seq:
            header.append("tokens equal")
        if self.metric_name:
            header += [self.metric_name, "change"]
        rows = [header]
        keras_row = ["keras", "", "", "", "", f"{self.keras_latency_ms:.2f}"]
        if seq2seq:
            keras_row.append("")
        if self.metric_name:
            keras_row += [f"{self.keras_metric:.4f}", ""]
        rows.append(keras_row)
        for a in self.artifacts:
            weights = "" if a.weight_bytes is None else _human_size(a.weight_bytes)
            row = [a.name, a.kind, _human_size(a.size_bytes), weights,
                   f"{a.max_abs_diff:.2e}", f"{a.latency_ms:.2f}"]
            if seq2seq:
                row.append(f"{a.tokens_equal:.1%}")
            if self.metric_name:
                row += [f"{a.metric:.4f}", f"{a.metric_change:+.4f}"]
            rows.append(row)
        widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
        lines = [f"{self.model_name}: {self.num_samples} samples"]
        for k, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        for a in self.artifacts:
            if a.ops is not None:
                lines.append(f"{a.name} ops: {', '.join(a.ops)}")
        return "\n".join(lines)


def _human_size(size):
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def verify(model, artifact_path, samples, latency_runs=LATENCY_RUNS):
    """Compares artifacts exported from ``model`` with ``model`` itself on ``samples``.

    Each artifact's ``serving_default`` runs on the samples (a SavedModel loaded with
    ``tf.saved_model.load``, a TFLite file in the LiteRT interpreter) and is compared with the
    Keras model: the largest absolute difference of the outputs (seq2seq: of the greedy
    scores, plus the fraction of tokens equal to ``model.generate``'s), the file size (for
    TFLite also the bytes of weights), the median latency of one call, the TFLite op list, and
    with targets the metric of the artifact next to Keras': accuracy for class ids (padded
    steps left out), mean absolute error for real values.

    Args:
        model: the built ``keras.Model`` the artifacts were exported from.
        artifact_path: one path or a list of paths (str or path-like): a SavedModel version
            directory, a base directory of :func:`kzoo.export.saved_model` (its highest
            version), or a ``.tflite`` file.
        samples: the model's inputs (an array, a tuple in ``model.inputs`` order, or a dict by
            input name), or ``(inputs, targets)`` to also compare the metric. For seq2seq:
            ``source_ids``, ``(source_ids, target_out_ids)`` or ``((source_ids,
            target_in_ids), target_out_ids)``; the decode is greedy, as long as the targets
            when they are given, else the model's default length.
        latency_runs: how many timed calls, after one warm-up call, each latency is the median
            of (default 5; 1 when only the differences matter).

    Returns:
        An ``ExportReport``: ``str(report)`` is a table; ``report.artifacts`` holds one
        ``ArtifactReport`` per artifact, in the order given (``report[path]`` finds one by
        path), with ``max_abs_diff``, ``size_bytes``, ``weight_bytes``, ``latency_ms``,
        ``ops``, ``tokens_equal`` (seq2seq), ``metric`` and ``metric_change``;
        ``report.keras_latency_ms`` and ``report.keras_metric`` are Keras' own.

    Raises:
        TypeError: if ``model`` is not a ``keras.Model``.
        ValueError: if ``model`` is not built, no artifact is given, ``latency_runs`` is not
            an int >= 1, the samples lack an input, or a file is not a readable TFLite file.
        FileNotFoundError: if a path does not exist or a directory holds no SavedModel.

    Example:

    ```python
    import numpy as np
    import kzoo
    import kzoo.export

    model = kzoo.build("many_to_one_gru", input_dim=3, num_classes=2, units=4)
    kzoo.export.saved_model(model, "serving/classifier")
    kzoo.export.tflite(model, "classifier.tflite")
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(8, 5, 3)).astype("float32")
    labels = rng.integers(0, 2, size=8)
    report = kzoo.export.verify(model, ["serving/classifier", "classifier.tflite"],
                                (inputs, labels), latency_runs=1)
    print(report)                                          # a table, one row per artifact
    print(report["classifier.tflite"].max_abs_diff < 1e-5)   # True
    ```
    """
    where = "kzoo.export.verify"
    check_exportable(model, where)
    if isinstance(latency_runs, bool) or not isinstance(latency_runs, int) or latency_runs < 1:
        raise ValueError(f"{where}: `latency_runs` must be a whole number >= 1, got "
                         f"{latency_runs!r}")
    paths = [artifact_path] if isinstance(artifact_path, (str, os.PathLike)) \
        else list(artifact_path)
    if not paths:
        raise ValueError(f"{where}: no artifact given")
    served = served_model(model)
    default = signatures(served)[0]
    inputs, targets = _split_samples(model, default, samples)
    feed = _feed(default, inputs)
    reference, keras_latency = _timed(lambda: _keras_outputs(model, served, default, feed),
                                       latency_runs)
    report = ExportReport(model_name=model.name, num_samples=len(next(iter(feed.values()))),
                          keras_latency_ms=keras_latency)
    if targets is not None:
        report.metric_name, report.keras_metric = _metric(model, reference, targets, feed)
    for path in paths:
        path = os.path.abspath(os.fspath(path))
        if os.path.isdir(path):
            artifact = _check_saved_model(_version_dir(path, where), feed, reference,
                                          latency_runs)
        elif os.path.isfile(path):
            artifact = _check_tflite(path, feed, reference, latency_runs)
        else:
            raise FileNotFoundError(f"{where}: no artifact at {path!r}")
        if is_seq2seq(model):
            artifact.tokens_equal = _tokens_equal(reference["tokens"], artifact.outputs["tokens"])
        if targets is not None:
            artifact.metric = _metric(model, artifact.outputs, targets, feed)[1]
            artifact.metric_change = artifact.metric - report.keras_metric
        del artifact.outputs
        report.artifacts.append(artifact)
    return report


# -- samples and reference outputs --------------------------------------------------------------
def _split_samples(model, signature, samples):
    if is_seq2seq(model):
        if isinstance(samples, (tuple, list)) and len(samples) == 2:
            source, targets = samples
            if isinstance(source, (tuple, list)):
                source = source[0]
            # Decode as long as the longest target (the end token included), so every scored
            # token is decoded whatever the source length (a word may become a dozen characters).
            return {"source_ids": source, "max_length": np.shape(targets)[1]}, targets
        return {"source_ids": samples}, None
    n_inputs = len(model.inputs)
    if isinstance(samples, dict):
        return samples, None
    if isinstance(samples, (tuple, list)) and len(samples) == 2:
        first = samples[0]
        if n_inputs == 1 and not isinstance(first, (tuple, list, dict)):
            return samples[0], samples[1]
        if n_inputs > 1 and isinstance(first, (tuple, list, dict)):
            return samples[0], samples[1]
    return samples, None


def _feed(signature, inputs):
    """``{input name: array}`` for ``signature`` (max_length: the default)."""
    names = signature.input_names
    if isinstance(inputs, dict):
        values = dict(inputs)
    else:
        arrays = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
        values = dict(zip(names, arrays))
    if "max_length" in names and "max_length" not in values:
        values["max_length"] = 0
    missing = sorted(set(names) - set(values))
    if missing:
        raise ValueError(f"kzoo.export.verify: samples lack input(s) {missing}; "
                         f"serving_default takes {names}")
    return {name: np.asarray(values[name], spec.dtype.as_numpy_dtype)
            for name, spec in zip(names, signature.specs)}


def _keras_outputs(model, served, signature, feed):
    if is_seq2seq(model):
        max_length = int(feed["max_length"])
        result = model.generate(feed["source_ids"], max_length=max_length or None)
        return {k: np.asarray(v) for k, v in result.items()}
    arrays = [feed[spec.name] for spec in signature.specs]
    outputs = served(arrays if len(arrays) > 1 else arrays[0], training=False)
    return {"outputs": np.asarray(outputs)}


def _timed(fn, runs):
    result = fn()  # warm-up (tracing, allocation)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return result, 1000 * float(np.median(times))


def _metric(model, outputs, targets, feed):
    targets = np.asarray(targets)
    if is_seq2seq(model):
        tokens = outputs["tokens"]
        width = min(tokens.shape[1], targets.shape[1])
        padded = np.zeros_like(targets)
        padded[:, :width] = tokens[:, :width]
        valid = targets != 0
        return "accuracy", float(np.mean((padded == targets)[valid]))
    predictions = outputs["outputs"]
    if np.issubdtype(targets.dtype, np.integer):
        correct = np.argmax(predictions, -1) == targets
        if correct.ndim == 2:
            correct = correct[_scored_steps(feed, correct.shape)]
        return "accuracy", float(np.mean(correct))
    return "mae", float(np.mean(np.abs(predictions - targets)))


def _scored_steps(feed, shape):
    """(batch, time) True where a step is real, not padding: token ids (the first input, or a
    one-to-many's ``target_in_ids``) other than 0."""
    valid = np.ones(shape, bool)
    first = next(iter(feed.values()))
    for ids in (first, feed.get("target_in_ids")):
        if ids is not None and np.issubdtype(ids.dtype, np.integer) and ids.shape == shape:
            valid &= ids != 0
    return valid


def _tokens_equal(reference, tokens):
    reference, tokens = np.asarray(reference), np.asarray(tokens)
    if reference.shape != tokens.shape:
        return 0.0
    return float(np.mean(reference == tokens))


def _max_abs_diff(reference, outputs):
    keys = ["scores"] if "tokens" in reference else ["outputs"]
    diffs = []
    for key in keys:
        a, b = np.asarray(reference[key], np.float64), np.asarray(outputs[key], np.float64)
        if a.shape != b.shape:
            return float("inf")
        diffs.append(float(np.max(np.abs(a - b))) if a.size else 0.0)
    return max(diffs)


# -- artifacts ----------------------------------------------------------------------------------
def _version_dir(path, where):
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(n) for n in os.listdir(path)
                if n.isdigit() and os.path.exists(os.path.join(path, n, "saved_model.pb"))]
    if not versions:
        raise FileNotFoundError(f"{where}: {path!r} holds no SavedModel (no saved_model.pb, no "
                                f"version directory)")
    return os.path.join(path, str(max(versions)))


def _directory_size(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def _check_saved_model(path, feed, reference, runs):
    function = tf.saved_model.load(path).signatures["serving_default"]
    tensors = {name: tf.constant(value) for name, value in feed.items()}
    outputs, latency = _timed(lambda: function(**tensors), runs)
    outputs = {k: v.numpy() for k, v in outputs.items()}
    artifact = ArtifactReport(path=path, kind="saved_model", size_bytes=_directory_size(path),
                              max_abs_diff=_max_abs_diff(reference, outputs),
                              latency_ms=latency)
    artifact.outputs = outputs
    return artifact


def _check_tflite(path, feed, reference, runs):
    from ai_edge_litert.interpreter import Interpreter

    with open(path, "rb") as handle:
        content = handle.read()
    # LiteRT writes "Created TensorFlow Lite XNNPACK delegate for CPU" on fd 2 at the first run.
    with quiet.silenced_stderr():
        try:
            interpreter = Interpreter(model_content=content)
        except ValueError as error:  # LiteRT's message does not say which file
            raise ValueError(f"kzoo.export.verify: {path!r} is not a readable TFLite file (a "
                             f"truncated or corrupted file?): {error}") from error
        runner = interpreter.get_signature_runner("serving_default")
        outputs, latency = _timed(lambda: runner(**feed), runs)
    outputs = {k: np.array(v) for k, v in outputs.items()}
    ops = sorted({d["op_name"] for d in interpreter._get_ops_details()})
    artifact = ArtifactReport(path=path, kind="tflite", size_bytes=len(content),
                              max_abs_diff=_max_abs_diff(reference, outputs),
                              latency_ms=latency, ops=ops,
                              weight_bytes=lite.weight_bytes(content))
    artifact.outputs = outputs
    return artifact
