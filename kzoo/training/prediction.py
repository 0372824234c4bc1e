"""``predict``: text decoded by a run's seq2seq model (what ``kzoo predict`` runs)."""

from kzoo.training.plots import seq2seq_tokens, source_target_vocabularies
from kzoo.training.run_dir import load_run_model, read_run, read_vocabularies


def _is_word_level(vocab):
    return any(len(token) > 1 and not (token.startswith("[") or token.startswith("<"))
               for token in vocab[4:50])


def encode_text(text, vocab, level=None):
    """Token ids of ``text`` for a vocabulary (a token list, index = id), ``level`` "word" or
    "char" (None: word level when the vocabulary holds words). Without a vocabulary ``text`` is
    token ids ("5 9 12"). Tokens outside the vocabulary become its unknown token, with an
    ``UnknownTokensWarning`` naming them (a ValueError if it has none)."""
    from kzoo.models.seq2seq import warn_unknown_tokens

    if not vocab:
        try:
            return [int(t) for t in text.split()]
        except ValueError:
            raise ValueError(f"this run has no vocabulary; give token ids ('5 9 12'), got "
                             f"{text!r}")
    index = {token: i for i, token in enumerate(vocab)}
    if level is None:
        level = "word" if _is_word_level(vocab) else "char"
    pieces = text.split() if level == "word" else list(text)
    unknown = next((i for t, i in index.items() if t.lower() in ("[unk]", "<unk>")), None)
    ids, unknown_pieces = [], []
    for piece in pieces:
        if piece in index:
            ids.append(index[piece])
        elif piece.lower() in index:
            ids.append(index[piece.lower()])
        elif unknown is not None:
            ids.append(unknown)
            unknown_pieces.append(piece)
        else:
            raise ValueError(f"{piece!r} is not in the run's source vocabulary")
    warn_unknown_tokens("encode_text", [(text, unknown_pieces)])
    return ids


def decode_ids(ids, vocab, end_id, level=None):
    """The text of token ids up to ``end_id``: words joined by spaces, characters by nothing."""
    tokens = []
    for i in ids:
        i = int(i)
        if i in (end_id, 0):
            break
        tokens.append(vocab[i] if vocab and i < len(vocab) else str(i))
    if level is None:
        level = "word" if not vocab or _is_word_level(vocab) else "char"
    joiner = " " if level == "word" else ""
    return joiner.join(tokens)


def predict(run_dir, texts, method="greedy", beam_width=4, max_length=None, attention_plot=None):
    """Decode each of ``texts`` with a run's seq2seq model (what ``kzoo predict`` runs).

    A model that carries its vocabularies (a run trained on text) reads and writes text as
    ``model.translate`` does (``text_to_ids``, ``generate``, ``ids_to_text``); otherwise the
    run's ``vocab/`` token lists are used (:func:`encode_text`), or, without any, the texts are
    token ids ("5 9 12"). ``max_length`` None is the model's default decode length
    (``kzoo.models.seq2seq.default_decode_length``). ``attention_plot``: a PNG of the first
    text's attention, the best hypothesis' under beam search.

    Returns:
        The output strings, one per text.

    Raises:
        ValueError: not a seq2seq run, an empty text, a text longer than the model takes
            (``kzoo.models.seq2seq.MAX_SOURCE_UNITS``), or ``attention_plot`` for a model
            without attention.

    Warns:
        UnknownTokensWarning: naming the tokens outside the source vocabulary.
    """
    import numpy as np

    config = read_run(run_dir)
    model = load_run_model(run_dir)
    if not hasattr(model, "generate"):
        raise ValueError(f"predict decodes seq2seq models; {config['model']} is not one "
                         f"(use model.predict in Python)")
    if attention_plot and model.attention is None:
        raise ValueError(f"predict: --plot draws the attention, and {config['model']} has none")
    if getattr(model, "vocabularies", None):
        vocabularies = {side: list(spec["tokens"]) for side, spec in model.vocabularies.items()}
        source = model.text_to_ids(list(texts)).numpy()
    else:
        vocabularies = read_vocabularies(run_dir)
        options = config.get("data_options") or {}
        rows = [encode_text(text, source_target_vocabularies(vocabularies)[0],
                            options.get("source_level")) for text in texts]
        source = np.zeros((len(rows), max(1, *map(len, rows))), "int32")
        for i, row in enumerate(rows):
            source[i, :len(row)] = row
    empty = [text for text, row in zip(texts, source) if not row.any()]
    if empty:
        raise ValueError(f"predict: an input has no token: {empty[0]!r}")
    result = model.generate(source, max_length=max_length, method=method,
                            beam_width=beam_width)
    tokens = result["tokens"].numpy()
    if attention_plot:
        from kzoo import diagnostics

        source_tokens, target_tokens = seq2seq_tokens(model, source[0], tokens[0], vocabularies)
        diagnostics.plot_attention(result["attention"][0].numpy(), source_tokens,
                                   target_tokens, attention_plot, title=texts[0])
    if getattr(model, "vocabularies", None):
        return model.ids_to_text(tokens)
    target_vocab = source_target_vocabularies(vocabularies)[1]
    level = (config.get("data_options") or {}).get("target_level")
    return [decode_ids(row, target_vocab, model.end_id, level) for row in tokens]
