"""``predict``: text decoded by a run's seq2seq model (what ``kzoo predict`` runs).

Text is read and written by the model's own vectorizers (``text_to_ids``, ``ids_to_text``, as
``model.translate`` does). A run whose model does not carry vocabularies but whose ``vocab/``
holds source and target token lists (a dataset without vectorizers) gets them the same way: its
model is rebuilt carrying ``TokenVectorizer`` s of those lists. A run without vocabularies reads
and writes token ids ("5 9 12").
"""

from kzoo.training.plots import attention_labels, carried_vocabularies
from kzoo.training.run_dir import load_run_model, read_run, read_vocabularies


def predict(run_dir, texts, method="greedy", beam_width=None, max_length=None,
            attention_plot=None):
    """Decodes texts with a run's seq2seq model (what ``kzoo predict`` runs).

    The texts are tokenized and the outputs joined by the model's vocabularies (see the module
    docstring); a run without any takes and gives token ids.

    Args:
        run_dir: a finished run directory of a seq2seq model.
        texts: a string or a list of strings: text, or token ids ("5 9 12") for a run
            without vocabularies.
        method: ``"greedy"`` or ``"beam"``.
        beam_width: hypotheses kept by beam search; None: the model's default.
        max_length: the most tokens decoded per text; None: the model's default decode length
            (``kzoo.models.seq2seq.default_decode_length``).
        attention_plot: None, or the path of a PNG to draw the attention of the first text's
            output into (the best hypothesis' under beam search).

    Returns:
        The output strings, one per text.

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished run.
        ValueError: not a seq2seq run, no text, a text without a token, a text longer than the model
            takes (``kzoo.models.seq2seq.MAX_SOURCE_UNITS``), ``attention_plot`` for a model
            without attention, text that is not token ids for a run without vocabularies, or
            a run whose ``vocab/`` does not fit its model.

    Warns:
        UnknownTokensWarning: naming the tokens outside the source vocabulary.

    Example:

    ```python
    import kzoo.training

    run = kzoo.training.train("seq2seq_gru", "number_words", out="runs/translator",
                              epochs=1, dataset_options={"max_number": 100},
                              model_config={"units": 8}, verbose=0)
    print(kzoo.training.predict(run.directory, ["twenty-three", "seven"]))
    ```
    """
    config = read_run(run_dir)
    model = load_run_model(run_dir)
    if not hasattr(model, "generate"):
        raise ValueError(f"predict decodes seq2seq models; {config['model']} is not one "
                         f"(use model.predict in Python)")
    if attention_plot and model.attention is None:
        raise ValueError(f"predict: --plot draws the attention, and {config['model']} has none")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(text, str) for text in texts):
        raise ValueError("predict: `texts` must be a string or a non-empty list of strings")
    model = _with_run_vocabularies(model, run_dir, config)
    if model.vocabularies is not None:
        source = model.text_to_ids(texts).numpy()
    else:
        source = _token_ids(texts)
    empty = [text for text, row in zip(texts, source) if not row.any()]
    if empty:
        raise ValueError(f"predict: an input has no token: {empty[0]!r}")
    options = {} if beam_width is None else {"beam_width": beam_width}
    result = model.generate(source, max_length=max_length, method=method, **options)
    tokens = result["tokens"].numpy()
    if attention_plot:
        from kzoo import diagnostics

        source_tokens, target_tokens = attention_labels(source[0], tokens[0], model.end_id,
                                                        carried_vocabularies(model))
        diagnostics.plot_attention(result["attention"][0].numpy(), source_tokens,
                                   target_tokens, attention_plot, title=texts[0])
    if model.vocabularies is not None:
        return model.ids_to_text(tokens)
    return [" ".join(str(i) for i in _up_to_end(row, model.end_id)) for row in tokens]


def _with_run_vocabularies(model, run_dir, config):
    """``model`` itself when it carries vocabularies or the run has no source and target token
    lists; else the same model (its weights) rebuilt carrying ``TokenVectorizer`` s of those
    lists, each at the level the dataset tokenized that side at (its ``source_level`` /
    ``target_level`` option; word level without one)."""
    from kzoo.models.seq2seq import VOCABULARY_SIDES

    if model.vocabularies is not None:
        return model
    lists = read_vocabularies(run_dir)
    if not set(VOCABULARY_SIDES) <= set(lists):
        return model
    options = config.get("data_options") or {}
    vocabularies = {side: {"tokens": lists[side], "level": options.get(f"{side}_level", "word")}
                    for side in VOCABULARY_SIDES}
    try:
        rebuilt = type(model).from_config({**model.get_config(), "vocabularies": vocabularies})
    except ValueError as error:
        raise ValueError(f"predict: the token lists of {str(run_dir)!r}/vocab do not fit its "
                         f"model: {error}") from None
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _token_ids(texts):
    """(batch, time) int32 ids of texts of token ids ("5 9 12"), 0-padded."""
    import numpy as np

    rows = []
    for text in texts:
        try:
            rows.append([int(t) for t in text.split()])
        except ValueError:
            raise ValueError(f"this run has no vocabulary; give token ids ('5 9 12'), got "
                             f"{text!r}") from None
    source = np.zeros((len(rows), max([1, *map(len, rows)])), "int32")
    for i, row in enumerate(rows):
        source[i, :len(row)] = row
    return source


def _up_to_end(ids, end_id):
    """The ids of a decoded row before its first end or padding id."""
    kept = []
    for i in ids:
        if int(i) in (end_id, 0):
            break
        kept.append(int(i))
    return kept


def predict_file(run_dir, input_path, output_path=None):
    """Predicts every window or row of a file with a run trained on a data file of series or
    classes (what ``kzoo predict RUN --input FILE`` runs).

    - A forecaster (a run on a CSV series) reads ``input_path`` as its data file was read (the
      same columns, ``fill`` and delimiter; at least ``window`` rows) and forecasts after every
      window of ``window`` consecutive rows: one output row per window, keyed by the window's
      last time (its ``time_column``, else its data row, the first 1), then the ``horizon``
      values forecast after it in the target's units (``TARGET+1``, ``TARGET+2``...). A
      many-to-many forecaster gives the forecast of its last step.
    - A text classifier reads the texts of ``input_path``: the run's text column of a CSV with
      a header, else the first tab-separated field of each line.
    - A sequence classifier reads a ``.npz`` (the run's inputs array) or a CSV with a header
      whose columns, less the run's label column, are the steps.

    A classifier's output has a row per input row: ``row,label,probability`` (the most likely
    class and its probability).

    Args:
        run_dir: a finished run directory trained with ``data=`` (``kzoo train --data``).
        input_path: a file like the run's data file.
        output_path: where the CSV of predictions goes (written atomically); None: only
            returned.

    Returns:
        The CSV text of the predictions (a header line, then one line per window or row).

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished run.
        ValueError: a run not trained on a file of series or classes, or a bad input file (the
            reader's ``DataFileError`` names the file, line and column), fewer rows than one
            window.

    Example:

    ```python
    import kzoo.datasets
    import kzoo.training

    series = kzoo.datasets.example_file("series.csv")
    run = kzoo.training.train("many_to_one_gru", out="runs/forecaster", data=series,
                              dataset_options={"target": "temp", "time_column": "date",
                                               "window": 12},
                              epochs=1, steps_per_epoch=2, model_config={"units": 4},
                              verbose=0)
    print(kzoo.training.predict_file(run.directory, series).splitlines()[:2])
    ```
    """
    from kzoo.datasets.files import lines as file_lines

    config = read_run(run_dir)
    data_format = (config.get("data_file") or {}).get("format")
    readers = {"series": _forecasts, "text_classes": _text_classes,
               "sequence_classes": _sequence_classes}
    if data_format not in readers:
        raise ValueError(f"predict --input takes a run trained on a file of series or classes "
                         f"(kzoo train --data); {str(run_dir)!r} is "
                         f"{'a ' + data_format + ' run' if data_format else 'not one'}")
    input_path = file_lines.check_file(input_path)
    rows = readers[data_format](run_dir, config, config.get("data_options") or {}, input_path)
    text = "".join(",".join(_csv_cell(cell) for cell in row) + "\n" for row in rows)
    if output_path is not None:
        _write_text_atomically(output_path, text)
    return text


def _forecasts(run_dir, config, options, input_path):
    """The CSV rows of a forecaster's predictions after every window of ``input_path``."""
    import numpy as np

    from kzoo.datasets.files.series import read_table

    window, horizon = int(options["window"]), int(options.get("horizon", 1))
    table = read_table(input_path, target=options["target"], features=options.get("features"),
                       time_column=options.get("time_column"),
                       delimiter=options.get("delimiter", ","), fill=options.get("fill"))
    count = len(table.values)
    if count < window:
        raise ValueError(f"{input_path}: {count} row(s), fewer than the run's window of "
                         f"{window}: a forecast reads {window} consecutive rows")
    windows = np.lib.stride_tricks.sliding_window_view(table.values, window, axis=0)
    windows = np.ascontiguousarray(np.moveaxis(windows, -1, 1))  # (n, window, features)
    forecast = np.asarray(load_run_model(run_dir).predict(windows, verbose=0))
    if forecast.ndim == 3:   # many-to-many: the forecast after the last step
        forecast = forecast[:, -1]
    forecast = forecast.reshape(len(windows), -1)[:, :horizon]
    keys = table.times[window - 1:] if table.times is not None else \
        [str(i + 1) for i in range(window - 1, count)]   # data rows, the first is 1
    header = [options.get("time_column") or "row",
              *(f"{options['target']}+{k}" for k in range(1, horizon + 1))]
    return [header] + [[key, *(f"{v:.6g}" for v in values)]
                       for key, values in zip(keys, forecast)]


def _text_classes(run_dir, config, options, input_path):
    """The CSV rows of a text classifier's label for every text of ``input_path``."""
    import csv

    import tensorflow as tf

    from kzoo.layers.text import TokenVectorizer

    tokens = read_vocabularies(run_dir).get("inputs")
    if tokens is None:
        raise ValueError(f"predict: {str(run_dir)!r} has no vocab/inputs.json")
    column = options.get("text_column", "text")
    with open(input_path, encoding="utf-8", newline="") as handle:
        if input_path.suffix.lower() == ".csv":
            reader = csv.reader(handle)
            header = next(reader, [])
            if column not in header:
                raise ValueError(f"{input_path}: no text column {column!r} in the header; "
                                 f"columns found: {', '.join(map(repr, header))}")
            index = header.index(column)
            texts = [row[index] for row in reader if row]
        else:
            texts = [line.rstrip("\r\n").split("\t")[0] for line in handle if line.strip()]
    vectorizer = TokenVectorizer(tokens, level=options.get("level", "word"),
                                 standardize=options.get("standardize"),
                                 max_length=options.get("max_length"))
    ids = vectorizer(tf.constant(texts)).numpy()
    return _class_rows(run_dir, config, ids)


def _sequence_classes(run_dir, config, options, input_path):
    """The CSV rows of a sequence classifier's label for every sequence of ``input_path``."""
    import csv

    import numpy as np

    if input_path.suffix.lower() == ".npz":
        key = options.get("inputs_key", "x")
        with np.load(input_path) as arrays:
            if key not in arrays:
                raise ValueError(f"{input_path}: no array {key!r}; arrays found: "
                                 f"{', '.join(map(repr, arrays.files))}")
            inputs = np.asarray(arrays[key], "float32")
    else:
        with open(input_path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            keep = [i for i, name in enumerate(header) if name != options.get("label_column",
                                                                              "label")]
            try:
                inputs = np.array([[float(row[i]) for i in keep] for row in reader if row],
                                  "float32")
            except ValueError as error:
                raise ValueError(f"{input_path}: a cell that is not a number ({error})") \
                    from None
    if inputs.ndim == 2:
        inputs = inputs[:, :, None]
    return _class_rows(run_dir, config, inputs)


def _class_rows(run_dir, config, inputs):
    import numpy as np

    probabilities = np.asarray(load_run_model(run_dir).predict(inputs, verbose=0))
    names = config.get("class_names") or [str(i) for i in range(probabilities.shape[-1])]
    best = probabilities.argmax(-1)
    return [["row", "label", "probability"]] + [
        [str(i + 1), names[k], f"{probabilities[i, k]:.4f}"] for i, k in enumerate(best)]


def _csv_cell(text):
    """A CSV field: quoted when it holds a comma, quote or line break."""
    text = str(text)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_text_atomically(path, text):
    import os
    import pathlib

    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
