"""benchmarks/learning.py's training loop (the full benchmark takes 20 minutes and is run by
hand): the warm-up curriculum of the adding rows, the time bound and best-epoch weights."""

import importlib.util

from .conftest import BENCHMARKS


def load_learning():
    spec = importlib.util.spec_from_file_location("learning", BENCHMARKS / "learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingModel:
    """Stands in for a keras.Model: records the data of each fit call; its "weights" are the
    epoch number and its validation score is ``scores[epoch]``."""

    def __init__(self, scores=None, seconds_per_epoch=0.0, clock=None):
        self.seen, self.scores, self.weights = [], scores, None
        self.seconds_per_epoch, self.clock = seconds_per_epoch, clock

    def fit(self, data, epochs, verbose, validation_data):
        assert epochs == 1
        self.seen.append(data)
        if self.clock is not None:
            self.clock[0] += self.seconds_per_epoch
        epoch = len(self.seen) - 1
        history = {"val_score": [self.scores[epoch]]} if self.scores else {}
        return type("History", (), {"history": history})()

    def get_weights(self):
        return len(self.seen) - 1

    def set_weights(self, weights):
        self.weights = weights


def test_the_first_warmup_epochs_train_on_the_warmup_data():
    learning = load_learning()
    model = RecordingModel()
    ran, _ = learning.fit_for(model, "task", epochs=5, seconds=1e9, warmup="halves",
                              warmup_epochs=2)
    assert ran == 5 and model.seen == ["halves", "halves", "task", "task", "task"]
    plain = RecordingModel()
    learning.fit_for(plain, "task", epochs=3, seconds=1e9)
    assert plain.seen == ["task"] * 3


def test_training_stops_after_the_epoch_that_crosses_the_time_bound(monkeypatch):
    learning = load_learning()
    clock = [0.0]
    monkeypatch.setattr(learning.time, "time", lambda: clock[0])
    model = RecordingModel(seconds_per_epoch=40.0, clock=clock)
    ran, seconds = learning.fit_for(model, "task", epochs=10, seconds=100, warmup="halves",
                                    warmup_epochs=5)
    assert (ran, seconds) == (3, 120.0) and model.seen == ["halves"] * 3


def test_the_best_validation_epoch_is_kept():
    learning = load_learning()
    model = RecordingModel(scores=[0.2, 0.9, 0.5])
    learning.fit_for(model, "task", epochs=3, seconds=1e9, validation="val", monitor="val_score")
    assert model.weights == 1


def test_the_adding_rows_share_one_schedule_that_ends_on_the_task():
    learning = load_learning()
    assert 0 < learning.ADDING_WARMUP < learning.ADDING_EPOCHS
