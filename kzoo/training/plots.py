"""The plots of a run: training curves, and the attention of a seq2seq model's decode."""

import pathlib

from kzoo.training.run_dir import read_vocabularies


def write_plots(run_dir, model, history, data):
    """Writes a run's plots into ``run_dir/plots``.

    ``training_curves.png`` when an epoch was trained, and for a seq2seq model with attention
    ``attention.png``: the greedy decode of the first source of ``data``, labelled with the
    model's vocabularies, else the run's ``vocab/`` token lists, else the ids.

    Args:
        run_dir: the run directory.
        model: the trained model.
        history: the run's history (``{"epochs": [...], "metrics": {...}}``).
        data: a ``tf.data.Dataset`` of ``((source_ids, target_in), target_out)`` batches for
            a seq2seq model (only its first batch is read); anything for other models.
    """
    from kzoo import diagnostics

    plots = pathlib.Path(run_dir) / "plots"
    plots.mkdir(exist_ok=True)
    if history.get("epochs"):
        diagnostics.plot_history(history, plots / "training_curves.png")
    if getattr(model, "attention", None) is not None and hasattr(model, "generate"):
        (source, _), _ = next(iter(data.take(1)))
        source = source[:1]
        result = model.generate(source)
        vocabularies = carried_vocabularies(model) or read_vocabularies(run_dir)
        source_tokens, target_tokens = attention_labels(
            source[0].numpy(), result["tokens"][0].numpy(), model.end_id, vocabularies)
        diagnostics.plot_attention(result["attention"][0].numpy(), source_tokens,
                                   target_tokens, plots / "attention.png")


def carried_vocabularies(model):
    """``{"source": tokens, "target": tokens}`` of the vocabularies a seq2seq model carries
    (``model.vocabularies``; index = id), or ``{}``.

    Args:
        model: any Keras model.

    Returns:
        A dict of token lists, empty for a model without vocabularies.
    """
    carried = getattr(model, "vocabularies", None) or {}
    return {side: list(spec["tokens"]) for side, spec in carried.items()}


def attention_labels(source_ids, output_ids, end_id, vocabularies):
    """The labels of an attention plot's axes.

    Args:
        source_ids: the source token ids of one example (padding 0 is left out).
        output_ids: the decoded ids of that example (read up to and including ``end_id``, or
            up to a 0).
        end_id: the model's end token id.
        vocabularies: ``{"source": tokens, "target": tokens}`` (index = id); a side without a
            token list, or an id past its list, is labelled with the id.

    Returns:
        ``(source labels, output labels)``, two lists of strings.
    """
    source = [int(i) for i in source_ids if int(i) != 0]
    output = []
    for i in output_ids:
        output.append(int(i))
        if int(i) in (end_id, 0):
            break

    def label(side, i):
        tokens = vocabularies.get(side)
        return tokens[i] if tokens and 0 <= i < len(tokens) else str(i)

    return [label("source", i) for i in source], [label("target", i) for i in output]
