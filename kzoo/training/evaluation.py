"""``evaluate``: a run's model on a split (what ``kzoo evaluate`` runs)."""

import pathlib

from kzoo.training.data import load_run_split
from kzoo.training.data_file import changed_note, run_data_file
from kzoo.training.run_dir import load_run_model, read_run, write_json


def evaluate(run_dir, split="test", batch_size=64, data_dir=None, max_examples=500):
    """Evaluates a run's model on a split of its dataset (what ``kzoo evaluate`` runs).

    The model's compiled loss and metrics (accuracy for a classifier; MSE as the loss and MAE
    for a forecaster, in the target's units), for a seq2seq model the exact match of greedy
    decoding (:func:`seq2seq_exact_match`), and the reference scores the dataset gives for the
    same split (its ``DatasetInfo.baselines``, e.g. ``persistence_mae``: a forecaster that
    does not beat them has learned nothing); written to ``run_dir/eval.json`` too. A dataset
    without ``split`` is evaluated on its validation split, then its train split (said on
    stdout).

    Args:
        run_dir: a finished run directory.
        split: the split to evaluate on.
        batch_size: the rows per batch.
        data_dir: where datasets are prepared (None: TFDS' default).
        max_examples: the most examples decoded for the exact match.

    Returns:
        ``{metric name: value}``, e.g. ``{"loss": 0.41, "accuracy": 0.87}``.

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished run.
        ValueError: a run trained with truncated BPTT (its stateful model needs chunks), or a
            dataset that cannot be loaded.

    Example:

    ```python
    import kzoo.training

    run = kzoo.training.train("many_to_one_gru", "example", out="runs/gru", epochs=1,
                              batch_size=8, dataset_options={"size": 16},
                              model_config={"units": 8, "vocab_size": 20}, verbose=0)
    print(kzoo.training.evaluate(run.directory))   # {'loss': ..., 'accuracy': ...}
    ```
    """
    import kzoo.models as km

    config = read_run(run_dir)
    if config.get("tbptt"):
        raise ValueError("evaluate: a run trained with --tbptt has a stateful model; evaluate it "
                         "on chunks in Python (kzoo.training.tbptt_chunks)")
    model = load_run_model(run_dir)
    model.compile(**km.compile_args(config["model"], **config["model_config"]))
    data_file = run_data_file(config)
    note = changed_note(data_file) if data_file else None
    if note:
        print(note)
    data, used, info = load_run_split(config, split, batch_size, data_dir)
    results = model.evaluate(data, verbose=0, return_dict=True)
    metrics = {key: float(value) for key, value in results.items()}
    if hasattr(model, "generate"):
        metrics["exact_match"] = seq2seq_exact_match(model, data, max_examples)
    for name, value in (getattr(info, "baselines", None) or {}).items():
        metrics.setdefault(name, float(value))
    write_json(pathlib.Path(run_dir) / "eval.json", {"split": used, "metrics": metrics})
    return metrics


def seq2seq_exact_match(model, data, max_examples=500):
    """The fraction of examples a seq2seq model decodes exactly.

    An example counts when its greedy decode equals its target up to and including the end
    token.

    Args:
        model: a seq2seq model (``generate``).
        data: a ``tf.data.Dataset`` of ``((source_ids, target_in), target_out)`` batches.
        max_examples: the most examples decoded.

    Returns:
        A float in [0, 1]; NaN when ``data`` holds no example.
    """
    correct = total = 0
    for (source, _), target_out in data:
        # Room for the whole target (characters may outnumber the source's words) and more.
        result = model.generate(source, max_length=int(target_out.shape[1]) + 8)
        tokens, target_out = result["tokens"].numpy(), target_out.numpy()
        for row, target in zip(tokens, target_out):
            want = [int(t) for t in target if t != 0]
            got = [int(t) for t in row[:len(want)]]
            correct += int(got == want)  # ``want`` ends with the end token
            total += 1
            if total >= max_examples:
                return correct / total
    return correct / total if total else float("nan")
