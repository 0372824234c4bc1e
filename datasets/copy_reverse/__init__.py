"""``copy`` and ``reverse``: remember T symbols, then output them (reversed for ``reverse``).

``task="synced"`` (many-to-many, one output per step): inputs ``[x_1..x_T, |, _ x T]`` and
targets ``[_ x (T + 1), x_1..x_T]`` (or ``x_T..x_1``), ids 1 blank ``_``, 2 delimiter ``|``,
symbols from 3. ``task="seq2seq"``: ``((x, [1, y]), [y, 2])`` with symbols from 4 (ids 0-3 are
the reserved pad/start/end/unknown).

Options (``kzoo.datasets.load("copy", **options)``, the same for ``"reverse"``):
    length: T, the symbols to remember (default 20).
    num_symbols: the alphabet's size, at least 2 (default 8).
    task: ``"synced"`` (default, many-to-many) or ``"seq2seq"``.
    num_train: examples in the train split (default 10000).
    num_validation: examples in the validation split (default 1000).
    num_test: examples in the test split (default 1000).
"""

import string

import tensorflow as tf

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.copy_reverse.copy_reverse_dataset_builder import Builder, CopyConfig
from kzoo.datasets.text import RESERVED_TOKENS

TASKS = ("synced", "seq2seq")
OPTIONS = {"length": 20, "num_symbols": 8, "task": "synced", "num_train": 10000,
           "num_validation": 1000, "num_test": 1000}
BLANK_ID, DELIMITER_ID, FIRST_SYMBOL_ID = 1, 2, 3


def _symbol_names(num_symbols):
    if num_symbols <= 26:
        return list(string.ascii_lowercase[:num_symbols])
    return [str(i) for i in range(num_symbols)]


def _load(name, reverse, *, split, batch_size, data_dir, shuffle, seed, length, num_symbols,
          task, num_train, num_validation, num_test):
    where = f"dataset {name!r}"
    check_positive_int(where, "length", length)
    check_positive_int(where, "num_symbols", num_symbols, minimum=2)
    check_choice(where, "task", task, TASKS)
    for option, value in (("num_train", num_train), ("num_validation", num_validation),
                          ("num_test", num_test)):
        check_positive_int(where, option, value)
    config = CopyConfig(length=length, num_symbols=num_symbols,
                        sizes=(num_train, num_validation, num_test))
    builder = core.prepare(Builder, config, data_dir)
    names = _symbol_names(num_symbols)

    def synced(example):
        symbols = example["symbols"] + FIRST_SYMBOL_ID
        answer = tf.reverse(symbols, [0]) if reverse else symbols
        blanks = tf.fill([length], BLANK_ID)
        inputs = tf.concat([symbols, [DELIMITER_ID], blanks], 0)
        targets = tf.concat([blanks, [BLANK_ID], answer], 0)
        return inputs, targets

    def seq2seq(example):
        symbols = example["symbols"] + len(RESERVED_TOKENS)
        answer = tf.reverse(symbols, [0]) if reverse else symbols
        return (symbols, tf.concat([[1], answer], 0)), tf.concat([answer, [2]], 0)

    examples = builder.as_dataset(split=split, shuffle_files=False).map(
        synced if task == "synced" else seq2seq)
    count = builder.info.splits[split].num_examples
    data = core.finish(examples, batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=count)
    if task == "synced":
        vocabulary = ["", "_", "|"] + names
        size = len(vocabulary)
        model_config = {"vocab_size": size, "num_classes": size}
        suggested = ("many_to_many_lstm", "many_to_many_gru", "many_to_many_rnn")
        vocabularies = {"inputs": vocabulary, "targets": vocabulary}
        # Blanks are free; a model with no memory guesses each answer symbol (1 in k).
        baselines = {"memoryless_accuracy": (length + 1 + length / num_symbols) /
                     (2 * length + 1)}
    else:
        vocabulary = list(RESERVED_TOKENS) + names
        model_config = {"source_vocab_size": len(vocabulary),
                        "target_vocab_size": len(vocabulary), "start_id": 1, "end_id": 2}
        suggested = ("seq2seq_attention", "seq2seq_lstm", "seq2seq_gru")
        vocabularies = {"source": vocabulary, "target": vocabulary}
        baselines = {}
    info = core.DatasetInfo(
        name=name, split=split, pattern="many_to_many" if task == "synced" else "seq2seq",
        suggested_models=suggested, model_config=model_config,
        options={"length": length, "num_symbols": num_symbols, "task": task,
                 "num_train": num_train, "num_validation": num_validation,
                 "num_test": num_test},
        num_examples=count, vocabularies=vocabularies, baselines=baselines,
        description=f"{name} {length} symbols of {num_symbols} ({task})",
        builder_info=builder.info)
    return data, info


@core.register_dataset(
    "copy", pattern="many_to_many", options=OPTIONS,
    description="copy T symbols after a delimiter (long-range memory); synced or seq2seq")
def load_copy(**kwargs):
    return _load("copy", False, **kwargs)


@core.register_dataset(
    "reverse", pattern="many_to_many", options=OPTIONS,
    description="output T symbols reversed after a delimiter; synced or seq2seq")
def load_reverse(**kwargs):
    return _load("reverse", True, **kwargs)
