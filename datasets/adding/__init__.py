"""``adding``: the adding problem at length T (many-to-one regression, long-range memory).

Inputs (T, 2): a value and a marker per step (one marked step in each half); target (1,):
the sum of the two marked values.
A SimpleRNN stays near the MSE of predicting the mean, 1/6 ≈ 0.167; an LSTM or GRU solves it.
"""

from kzoo.datasets import core
from kzoo.datasets.adding.adding_dataset_builder import AddingConfig, Builder

OPTIONS = {"length": 100, "num_train": 20000, "num_validation": 1000, "num_test": 1000}
MEAN_PREDICTOR_MSE = 1.0 / 6.0


@core.register_dataset(
    "adding", pattern="many_to_one", options=OPTIONS,
    description="the adding problem: sum the two marked values of a length-T sequence")
def load_adding(*, split, batch_size, data_dir, shuffle, seed, length, num_train,
                num_validation, num_test):
    name = "adding"
    core.check_positive_int(name, "length", length, minimum=2)
    for option, value in (("num_train", num_train), ("num_validation", num_validation),
                          ("num_test", num_test)):
        core.check_positive_int(name, option, value)
    config = AddingConfig(length=length, sizes=(num_train, num_validation, num_test))
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
        options={"length": length, "num_train": num_train, "num_validation": num_validation,
                 "num_test": num_test},
        num_examples=count, baselines={"mean_predictor_mse": MEAN_PREDICTOR_MSE},
        description=f"adding problem, T={length}", builder_info=builder.info)
    return data, info
