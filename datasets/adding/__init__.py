"""``adding``: the adding problem at length T (many-to-one regression, long-range memory).

Inputs (T, 2): a value and a marker per step; target (1,): the sum of the two marked values.
``placement="early"`` (default, Hochreiter & Schmidhuber 1997): both marked steps among the first
T/2 - 1, the first among the first 10; ``"halves"``: one marked step in each half (Le et al. 2015).
With "early" a SimpleRNN stays near the MSE of predicting the mean, 1/6 ≈ 0.167; an LSTM or GRU
solves it. With "halves" a net that remembers only the later value scores 1/12 ≈ 0.083.

Options (``kzoo.datasets.load("adding", **options)``):
    length: T, the steps of each sequence (default 100; at least 6 for "early", 2 for
        "halves").
    placement: where the two marked steps go: ``"early"`` (default) or ``"halves"``.
    num_train: examples in the train split (default 20000).
    num_validation: examples in the validation split (default 1000).
    num_test: examples in the test split (default 1000).
"""

from kzoo.checks import check_choice, check_positive_int
from kzoo.datasets import core
from kzoo.datasets.adding.adding_dataset_builder import (
    MINIMUM_LENGTH, PLACEMENTS, AddingConfig, Builder)

OPTIONS = {"length": 100, "placement": "early", "num_train": 20000, "num_validation": 1000,
           "num_test": 1000}
MEAN_PREDICTOR_MSE = 1.0 / 6.0
LATER_VALUE_ONLY_MSE = 1.0 / 12.0


@core.register_dataset(
    "adding", pattern="many_to_one", options=OPTIONS,
    description="the adding problem: sum the two marked values of a length-T sequence")
def load_adding(*, split, batch_size, data_dir, shuffle, seed, length, placement, num_train,
                num_validation, num_test):
    name = "adding"
    where = f"dataset {name!r}"
    check_choice(where, "placement", placement, PLACEMENTS)
    check_positive_int(where, "length", length, minimum=MINIMUM_LENGTH[placement])
    for option, value in (("num_train", num_train), ("num_validation", num_validation),
                          ("num_test", num_test)):
        check_positive_int(where, option, value)
    config = AddingConfig(length=length, sizes=(num_train, num_validation, num_test),
                          placement=placement)
    builder = core.prepare(Builder, config, data_dir)
    examples = builder.as_dataset(split=split, shuffle_files=False).map(
        lambda e: (e["inputs"], e["target"][None]))
    count = builder.info.splits[split].num_examples
    data = core.finish(examples, batch_size=batch_size, shuffle=shuffle, seed=seed,
                       num_examples=count)
    info = core.DatasetInfo(
        name=name, split=split, pattern="many_to_one",
        suggested_models=("many_to_one_lstm", "many_to_one_gru", "many_to_one_rnn"),
        model_config={"input_dim": 2, "num_classes": None, "output_dim": 1},
        options={"length": length, "placement": placement, "num_train": num_train,
                 "num_validation": num_validation, "num_test": num_test},
        num_examples=count, baselines={"mean_predictor_mse": MEAN_PREDICTOR_MSE,
                                       "later_value_only_mse": LATER_VALUE_ONLY_MSE},
        description=f"adding problem, T={length}, {placement} markers",
        builder_info=builder.info)
    return data, info
