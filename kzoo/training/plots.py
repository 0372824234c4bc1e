"""The plots of a run: training curves, and the attention of a seq2seq model's decode."""

import pathlib

from kzoo.training.run_dir import read_vocabularies


def write_plots(run_dir, model, history, data):
    from kzoo import diagnostics

    plots = pathlib.Path(run_dir) / "plots"
    plots.mkdir(exist_ok=True)
    if history.get("epochs"):
        diagnostics.plot_history(history, plots / "training_curves.png")
    if getattr(model, "attention", None) is not None and hasattr(model, "generate"):
        (source, _), _ = next(iter(data.take(1)))
        source = source[:1]
        result = model.generate(source)
        source_tokens, target_tokens = seq2seq_tokens(model, source[0].numpy(),
                                                      result["tokens"][0].numpy(),
                                                      read_vocabularies(run_dir))
        diagnostics.plot_attention(result["attention"][0].numpy(), source_tokens,
                                   target_tokens, plots / "attention.png")


def seq2seq_tokens(model, source_ids, output_ids, vocabularies):
    """Source tokens without padding and output tokens up to the end token, as strings when the
    run has vocabularies (``source``/``target`` token lists), else as ids."""
    source_vocab, target_vocab = source_target_vocabularies(vocabularies)
    source = [int(i) for i in source_ids if int(i) != 0]
    output = []
    for i in output_ids:
        output.append(int(i))
        if int(i) in (model.end_id, 0):
            break

    def name(vocab, i):
        return vocab[i] if vocab and 0 <= i < len(vocab) else str(i)

    return [name(source_vocab, i) for i in source], [name(target_vocab, i) for i in output]


def source_target_vocabularies(vocabularies):
    source = next((v for k, v in vocabularies.items() if k.startswith("source")), None)
    target = next((v for k, v in vocabularies.items() if k.startswith("target")), None)
    return source, target
