"""``evaluate``: a run's model on a split (what ``kzoo evaluate`` runs)."""

import pathlib

from kzoo.training.data import load_run_split
from kzoo.training.run_dir import load_run_model, read_run, write_json


def evaluate(run_dir, split="test", batch_size=64, data_dir=None, max_examples=500):
    """The compiled loss and metrics of a run's model on ``split``, and for seq2seq the exact
    match of greedy decoding on up to ``max_examples`` examples. Writes ``eval.json``."""
    import kzoo.models as km

    config = read_run(run_dir)
    model = load_run_model(run_dir)
    model.compile(**km.compile_args(config["model"], **config["model_config"]))
    data, used = load_run_split(config, split, batch_size, data_dir)
    if config.get("tbptt"):
        raise ValueError("evaluate: a run trained with --tbptt has a stateful model; evaluate it "
                         "on chunks in Python (kzoo.training.tbptt_chunks)")
    results = model.evaluate(data, verbose=0, return_dict=True)
    metrics = {key: float(value) for key, value in results.items()}
    if hasattr(model, "generate"):
        metrics["exact_match"] = seq2seq_exact_match(model, data, max_examples)
    write_json(pathlib.Path(run_dir) / "eval.json", {"split": used, "metrics": metrics})
    return metrics


def seq2seq_exact_match(model, data, max_examples=500):
    """Fraction of examples whose greedy decode equals the target up to and including the end
    token."""
    import numpy as np

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
    return correct / max(total, 1) if total else float(np.nan)
