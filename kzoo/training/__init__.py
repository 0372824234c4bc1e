"""The trainer behind ``kzoo train`` and what the other commands run on its run directories.

    run = kzoo.training.train("seq2seq_attention", "number_words", out="runs/translator")
    run.history["metrics"]["loss"], run.model, run.directory
    kzoo.training.evaluate(run.directory)
    kzoo.training.export_run(run.directory, quantize="dynamic")
    kzoo.training.predict(run.directory, ["twenty-three"])
    kzoo.training.train("seq2seq_attention", out="runs/mine", data="pairs.tsv")   # own file
    kzoo.training.predict_file("runs/forecaster", "recent.csv", "forecast.csv")

Modules: :mod:`~kzoo.training.trainer` (``train``), :mod:`~kzoo.training.data` (datasets by
name, epochs, batches, truncated BPTT chunks), :mod:`~kzoo.training.data_file` (a run on the
user's own file: its path and content hash), :mod:`~kzoo.training.run_dir` (the run
directory's files), :mod:`~kzoo.training.strategies` (``tf.distribute`` strategies and the
multi-worker loop), :mod:`~kzoo.training.callbacks`, :mod:`~kzoo.training.plots`, and one
module per command: :mod:`~kzoo.training.evaluation`, :mod:`~kzoo.training.exporting`,
:mod:`~kzoo.training.prediction`, :mod:`~kzoo.training.benchmark`.

Importing this package imports no TensorFlow (the ``kzoo`` command checks its arguments with it
first); each function imports what it needs.
"""

from kzoo.training.benchmark import bench
from kzoo.training.callbacks import ResetStatesEvery
from kzoo.training.data_file import DataChangedError, DataFile
from kzoo.training.data import EXAMPLE_DATASET, list_datasets, tbptt_chunks
from kzoo.training.evaluation import evaluate
from kzoo.training.exporting import EXPORT_FORMATS, ExportRun, export_run
from kzoo.training.prediction import predict, predict_file
from kzoo.training.run_dir import check_finished_run, load_run_model, read_history, read_run, \
    read_vocabularies
from kzoo.training.strategies import STRATEGIES, make_strategy
from kzoo.training.trainer import DEFAULT_CLIPNORM, Run, default_clipnorm, final_metrics_line, \
    train

__all__ = ["train", "Run", "evaluate", "export_run", "ExportRun", "predict", "predict_file",
           "bench", "DataFile", "DataChangedError",
           "list_datasets", "check_finished_run", "read_run", "load_run_model",
           "read_vocabularies", "read_history", "final_metrics_line", "default_clipnorm",
           "make_strategy", "tbptt_chunks", "ResetStatesEvery", "STRATEGIES", "EXAMPLE_DATASET",
           "DEFAULT_CLIPNORM", "EXPORT_FORMATS"]
