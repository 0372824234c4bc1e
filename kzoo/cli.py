"""The ``kzoo`` command: list, info, train, evaluate, export, predict, bench, convert.

    kzoo list                                    # name, pattern, cell, parameters
    kzoo info seq2seq_attention
    kzoo train seq2seq_attention --dataset number_words --out runs/translator
    kzoo train seq2seq_attention --data pairs.tsv --out runs/mine   # the user's own file
    kzoo evaluate runs/translator
    kzoo export runs/translator --format saved_model,tflite --quantize dynamic
    kzoo export model.keras --out exported        # a Keras model file: converted, then exported
    kzoo convert model.keras model.kzoo.keras     # a Keras model file with kzoo's RNN layers
    kzoo predict runs/translator "twenty-three"
    kzoo predict runs/forecaster --input recent.csv --output forecast.csv
    kzoo bench many_to_one_lstm many_to_one_gru

Usage errors (an unknown model or dataset, a missing run directory, a bad flag value) exit with
code 2 and one line on stderr, no traceback. Arguments are checked before TensorFlow is imported
where they can be; TensorFlow is imported with file descriptor 2 pointed at /dev/null, since its
C++ runtime writes log lines there whatever ``TF_CPP_MIN_LOG_LEVEL`` says. A reader of stdout
that stops early (``kzoo list | head -1``) ends the command quietly, with status 141.

A command prints its progress and results, nothing else: the log lines of TensorFlow, the TFLite
converter, LiteRT and TFDS are silenced (:mod:`kzoo.quiet`) unless ``--verbose`` (``-v``) is
given, before or after the command name.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import textwrap

from kzoo import quiet
from kzoo.checks import close_matches
from kzoo.choices import QUANTIZE_MODES, STRATEGIES
from kzoo.conversion.files import is_model_file
from kzoo.quiet import silenced_stderr
from kzoo.training.exporting import EXPORT_FORMATS
from kzoo.training.run_dir import check_finished_run

# The names kzoo.datasets registers, so that --dataset is checked before TensorFlow is imported
# (importing any module of kzoo.datasets imports it); tests/test_cli.py holds this equal to
# kzoo.datasets.list_datasets().
DATASETS = ("adding", "copy", "digits", "imdb_reviews", "number_words", "reverse",
            "ted_hrlr_translate", "temperature", "weather")
# --quantize none: no quantized file (None in the library).
QUANTIZE = ("none", *(mode for mode in QUANTIZE_MODES if mode is not None))
DEFAULT_EPOCHS = 10
RUN_SAMPLES = 32      # `kzoo export RUN_DIR`: held-out examples verified on, by default
INFO_WIDTH = 100      # `kzoo info` wraps to the terminal's width, at most this
INFO_KEY_WIDTH = 30   # a wider KEY=VALUE gets a line of its own above its explanation
VERBOSE_HELP = ("also show the log lines of TensorFlow, the TFLite converter, LiteRT and TFDS "
                "(hidden by default)")


class UsageError(Exception):
    """A wrong command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and then the error: two or more lines. One is enough.
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _import_tensorflow():
    quiet.import_tensorflow()
    with silenced_stderr():
        import kzoo.layers  # noqa: F401
        import kzoo.models.zoo  # noqa: F401
        import kzoo.training  # noqa: F401


# -- argument types (checked before TensorFlow loads) --------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _clipnorm(text):
    if text == "default":
        return text
    if text.lower() in ("none", "off", "0"):
        return None
    return _positive_float(text)


def _key_value(text):
    """``KEY=VALUE`` with VALUE read as JSON when it parses (8, 0.5, true, null), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _samples(text):
    """``--samples``: a count of held-out examples (a run) or a .npz file of inputs (a file)."""
    if text.lower().endswith(".npz"):
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or a .npz file, got "
                                         f"{text!r}") from None


def _formats(text):
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"formats are a comma-separated subset of "
                                         f"{','.join(EXPORT_FORMATS)}, got {text!r}")
    return formats


def _check_model_name(name):
    import kzoo
    from kzoo.models.registry import unknown_model_error

    names = kzoo.list_models()
    if name not in names:
        raise UsageError(str(unknown_model_error(name, names, listed_by="`kzoo list`")))


def _check_dataset_name(name):
    from kzoo.training import EXAMPLE_DATASET

    names = (EXAMPLE_DATASET, *DATASETS)
    if name not in names:
        close = close_matches(name, names)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown dataset {name!r}{hint}; datasets: {', '.join(names)}")


def _model_names(args):
    """The model names on the command line (info, train: one; bench: several)."""
    names = getattr(args, "names", None)
    return names if names is not None else [n for n in [getattr(args, "name", None)] if n]


def _parameters(name):
    from kzoo.models import catalog

    count = catalog.default_parameters(name)
    return "?" if count is None else f"{count:,}"


# -- commands -------------------------------------------------------------------------------------
# `list` and `info` read the registry's metadata, which needs no TensorFlow (kzoo.models.catalog).
def cmd_list(args):
    import kzoo

    rows = []
    for name in kzoo.list_models(args.pattern):
        info = kzoo.model_info(name)
        rows.append((name, info.pattern, info.cell, _parameters(name)))
    if not rows:
        raise UsageError(f"no model matches {args.pattern!r} (try `kzoo list`)")
    header = ("name", "pattern", "cell", "parameters")
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(4)]
    for row in [header] + rows:
        print("  ".join(f"{cell:>{w}}" if i == 3 else f"{cell:<{w}}"
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return 0


def cmd_info(args):
    import kzoo

    info = kzoo.model_info(args.name)
    width = min(shutil.get_terminal_size((INFO_WIDTH, 24)).columns, INFO_WIDTH)
    print(textwrap.fill(f"{info.name}: {info.description}", width, subsequent_indent="  ",
                        break_on_hyphens=False))
    print(f"pattern: {info.pattern}\ncell: {info.cell}")
    print(f"parameters: {_parameters(info.name)} (with the default config)")
    print("config (the defaults; `kzoo train --config KEY=VALUE` overrides one, VALUE in JSON):")
    settings = {key: f"{key}={json.dumps(value)}" for key, value in info.default_config.items()}
    column = min(max(map(len, settings.values())), INFO_KEY_WIDTH) + 4
    text_width = max(width - column, 30)
    for key, setting in settings.items():
        lines = textwrap.wrap(info.arguments[key], text_width, break_on_hyphens=False)
        if len(setting) + 4 > column:  # too wide to share a line with its explanation
            print(f"  {setting}")
        else:
            print(f"  {setting:<{column - 2}}{lines.pop(0)}")
        for line in lines:
            print(" " * column + line)
    return 0


def cmd_train(args):
    from kzoo import training
    import kzoo

    info = kzoo.model_info(args.name)
    config = dict(args.config)
    unknown = sorted(set(config) - set(info.default_config))
    if unknown:
        raise UsageError(f"{args.name}: unknown --config key(s) {unknown}; keys: "
                         f"{sorted(info.default_config)}")
    out = args.out or os.path.join("runs", args.name)
    clipnorm = "default" if args.clipnorm == "default" else args.clipnorm
    options = dict(args.option)
    if args.skip_bad_lines:
        options["skip_bad_lines"] = True
    dataset = training.EXAMPLE_DATASET if args.dataset is None else args.dataset
    run = training.train(args.name, dataset, out=out, epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.lr, clipnorm=clipnorm,
                         seed=args.seed, strategy=args.strategy, model_config=config,
                         dataset_options=options, data_dir=args.data_dir,
                         steps_per_epoch=args.steps_per_epoch, tbptt=args.tbptt,
                         verbose=0 if args.quiet else None, data=args.data,
                         data_format=args.data_format, data_changed_ok=args.data_changed_ok)
    print(training.final_metrics_line(run.history))
    print(f"run directory: {run.directory}")
    return 0


def cmd_evaluate(args):
    from kzoo import training

    run_dir = check_finished_run(args.run_dir)
    config = training.read_run(run_dir)
    metrics = training.evaluate(run_dir, split=args.split, batch_size=args.batch_size,
                                data_dir=args.data_dir, max_examples=args.max_examples)
    dataset = os.path.basename(config["data_file"]["path"]) if config.get("data_file") \
        else config["dataset"]
    print(f"{config['model']} on {dataset}/{args.split}: " +
          " · ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return 0


def _print_warnings(command, caught):
    for warning in caught:
        message = " ".join(str(warning.message).split())
        print(f"kzoo {command}: warning: {message}", file=sys.stderr)


def cmd_export(args):
    from kzoo import training

    if is_model_file(args.run_dir):
        return _export_model_file(args)
    if isinstance(args.samples, str):
        raise UsageError("--samples FILE.npz goes with a model file; a run directory takes a "
                         "number of held-out examples")
    run_dir = check_finished_run(args.run_dir)
    quantize = None if args.quantize == "none" else args.quantize
    result = training.export_run(run_dir, formats=args.format, quantize=quantize, out=args.out,
                                 samples=args.samples or RUN_SAMPLES, data_dir=args.data_dir,
                                 overwrite=args.overwrite)
    if not result.written:
        print(f"{result.directory} is up to date with {run_dir / 'model.keras'}; nothing to "
              f"export (--overwrite exports again)")
        return 0
    for path in result.written:
        print(f"wrote {path}")
    print(result.report)
    return 0


def _export_model_file(args):
    import warnings

    from kzoo.conversion import files

    quantize = None if args.quantize == "none" else args.quantize
    samples = None if args.samples is None or isinstance(args.samples, int) else args.samples
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = files.export_file(args.run_dir, out=args.out, samples=samples,
                                   formats=args.format, quantize=quantize,
                                   overwrite=args.overwrite)
    _print_warnings("export", [w for w in caught if "kzoo" in str(w.message)])
    for path in result.paths:
        print(f"wrote {path}")
    print(result)
    return 0


def cmd_convert(args):
    import warnings

    from kzoo.conversion import files

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        files.convert_file(args.source, args.destination, overwrite=args.overwrite,
                           strict=not args.keep_unconverted)
    _print_warnings("convert", [w for w in caught if "kzoo" in str(w.message)])
    print(f"wrote {args.destination}")
    return 0


def cmd_predict(args):
    import warnings

    from kzoo import training
    from kzoo.models.seq2seq import UnknownTokensWarning

    run_dir = check_finished_run(args.run_dir)
    if args.input is not None:
        if args.text:
            raise UsageError("give text or --input FILE, not both")
        written = training.predict_file(run_dir, args.input, args.output)
        if args.output is None:
            sys.stdout.write(written)
        else:
            print(f"wrote {args.output}")
        return 0
    if args.output is not None:
        raise UsageError("--output writes the predictions of an --input file")
    if not args.text:
        raise UsageError("give the text to decode, or --input FILE (forecasters, classifiers)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnknownTokensWarning)
        results = training.predict(run_dir, args.text, method="beam" if args.beam else "greedy",
                                   beam_width=args.beam, max_length=args.max_length,
                                   attention_plot=args.plot)
    for warning in caught:
        if issubclass(warning.category, UnknownTokensWarning):
            message = " ".join(str(warning.message).split())
            print(f"kzoo predict: warning: {message}", file=sys.stderr)
    for text, output in zip(args.text, results):
        print(f"{text} -> {output}" if len(args.text) > 1 else output)
    return 0


def cmd_bench(args):
    from kzoo import training

    rows = training.bench(args.names, batch_size=args.batch_size, steps=args.steps,
                          model_config=dict(args.config))
    header = ("model", "parameters", "predict ms/batch", "train ms/batch")
    table = [header] + [(r["model"], f"{r['parameters']:,}", f"{r['predict_ms']:.2f}",
                         f"{r['train_ms']:.2f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                        for i, (c, w) in enumerate(zip(row, widths))))
    return 0


def make_parser():
    parser = _Parser(prog="kzoo", description="A model zoo of recurrent networks.")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("list", help="list the registered models")
    p.add_argument("pattern", nargs="?", default=None,
                   help="an I/O pattern (many_to_one...) or a glob ('*lstm*')")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("info", help="describe one model")
    p.add_argument("name")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("train", help="train a model on a dataset or your own file into a "
                                          "run directory")
    p.add_argument("name", help="a registered model (kzoo list)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset",
                        help="a kzoo.datasets name, or 'example' (random data of the model's "
                             "shape)")
    source.add_argument("--data", metavar="FILE",
                        help="your own file (or a folder per class): text pairs (.tsv, .csv, "
                             "two line-aligned files), a series (.csv), labelled sequences "
                             "(.csv, .npz); read by kzoo.datasets.from_file, its options "
                             "through --option")
    p.add_argument("--data-format", default=None, metavar="FORMAT",
                   help="text_pairs, series, text_classes or sequence_classes (default: "
                        "from the extension and options, as kzoo.datasets.from_file decides)")
    p.add_argument("--skip-bad-lines", action="store_true",
                   help="with --data: skip lines with the wrong number of columns (counted "
                        "and reported) instead of stopping at the first")
    p.add_argument("--data-changed-ok", action="store_true",
                   help="with --data: resume a run although the file's content changed since "
                        "it was trained on it (refused by default)")
    p.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS)
    p.add_argument("--batch-size", type=_positive_int, default=32,
                   help="the global batch (split over the replicas of a strategy)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--clipnorm", type=_clipnorm, default="default",
                   help="clip each gradient to this norm (default 1.0 for recurrent models, "
                        "off for the MLP; 'none' disables)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--out", default=None, help="the run directory (default runs/NAME)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="mirrored: every GPU, or two logical CPU devices; multiworker: the "
                        "workers TF_CONFIG names. With several replicas each batch loses its "
                        "last rows beyond a multiple of the replica count")
    p.add_argument("--config", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="override a model config value (repeatable)")
    p.add_argument("--option", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="a dataset option, or with --data a reader option such as "
                        "target=value (repeatable)")
    p.add_argument("--data-dir", default=None, help="where datasets are prepared")
    p.add_argument("--steps-per-epoch", type=_positive_int, default=None)
    p.add_argument("--tbptt", type=_positive_int, default=None, metavar="K",
                   help="truncated BPTT: train a stateful many_to_many model on K-step chunks "
                        "of each batch, K from 1 to the sequence length (the last chunk is "
                        "shorter when K does not divide it); the stateful model has one batch "
                        "size, so a last partial batch is dropped")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("evaluate", help="evaluate a trained run on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--max-examples", type=_positive_int, default=500,
                   help="examples decoded for seq2seq exact match")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("export", help="export a trained run or a Keras model file "
                                           "(SavedModel, TFLite) and verify it")
    p.add_argument("run_dir", metavar="RUN_DIR_OR_FILE",
                   help="a run directory, or a Keras model file (.keras, .h5), which is "
                        "converted to kzoo's layers first (kzoo convert)")
    p.add_argument("--format", type=_formats, default=list(EXPORT_FORMATS),
                   help="comma-separated: saved_model,tflite (default both)")
    p.add_argument("--quantize", choices=QUANTIZE, default="none",
                   help="an extra quantized TFLite file beside the float one")
    p.add_argument("--out", default=None,
                   help="default RUN_DIR/export, or FILE_STEM_export next to a model file")
    p.add_argument("--samples", type=_samples, default=None,
                   help="held-out examples the verification runs on (a run; default 32), or a "
                        ".npz file of inputs, one array per input name (a model file; default "
                        "random inputs of a few time lengths)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("predict", help="decode text with a trained seq2seq run, or "
                                            "predict the rows of a file")
    p.add_argument("run_dir")
    p.add_argument("text", nargs="*", help="texts to decode (seq2seq runs)")
    p.add_argument("--input", default=None, metavar="FILE",
                   help="a file like the run's data file (a forecaster's or classifier's): "
                        "one prediction per window or row, as CSV")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="where --input's predictions go (default stdout)")
    p.add_argument("--beam", type=_positive_int, default=None, metavar="WIDTH",
                   help="beam search of this width (default greedy)")
    p.add_argument("--max-length", type=_positive_int, default=None)
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="write the attention heatmap of the first text's output here (with "
                        "--beam, the best hypothesis'); models with attention only")
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser("bench", help="time predict and train steps on example batches")
    p.add_argument("names", nargs="*",
                   default=["many_to_one_rnn", "many_to_one_lstm", "many_to_one_gru"])
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--steps", type=_positive_int, default=10)
    p.add_argument("--config", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value of every model")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("convert", help="rewrite a Keras model file with kzoo's recurrent "
                                            "layers (same weights, builtins-only TFLite)")
    p.add_argument("source", metavar="IN", help="a Keras model file (.keras, or legacy .h5)")
    p.add_argument("destination", metavar="OUT", help="the converted model's .keras file")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--keep-unconverted", action="store_true",
                   help="keep a recurrent layer kzoo cannot replace (a custom cell) as it is, "
                        "with a warning, instead of failing")
    p.set_defaults(func=cmd_convert)
    for command in commands.choices.values():  # `kzoo train ... -v` as well as `kzoo -v train`
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help=VERBOSE_HELP)
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    quiet.set_verbose(args.verbose)
    try:
        run_dir = getattr(args, "run_dir", None)
        if run_dir is not None and is_model_file(run_dir):
            _check_model_file(run_dir)
        elif run_dir is not None:
            check_finished_run(args.run_dir)  # before TensorFlow: a typo fails at once
        if args.func is cmd_convert:
            _check_model_file(args.source)
        for name in _model_names(args):
            _check_model_name(name)  # likewise: the registry's metadata needs no TensorFlow
        if getattr(args, "dataset", None) is not None:
            _check_dataset_name(args.dataset)
        for path in (getattr(args, "data", None), getattr(args, "input", None)):
            if path is not None and not os.path.exists(path):
                raise UsageError(f"no such file {path!r}")
        if args.func not in (cmd_list, cmd_info):
            _import_tensorflow()
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader gone away is met by the handler below
        return code
    except BrokenPipeError:
        return _reader_gone()
    except (UsageError, ValueError, TypeError, OSError) as error:
        # OSError: a path that cannot be written or read (--out under a file, a full disk).
        message = " ".join(str(error).split())
        print(f"kzoo {args.command}: error: {message}", file=sys.stderr)
        return 2


def _check_model_file(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path!r}")


def _reader_gone():
    """The reader of stdout stopped early (``kzoo list | head -1``): exit without a message and
    with the status of a Unix tool that SIGPIPE ended (128 + 13). Stdout is pointed at /dev/null
    first, or Python's own flush at exit would meet the closed pipe again and print."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
