"""Keeping the log lines kzoo's own calls cause off a user's screen, unless asked for.

kzoo calls into TensorFlow, the TFLite converter, LiteRT and TFDS, which log things a user did
not ask about and cannot act on: TensorFlow's C++ runtime writes lines on file descriptor 2 at
import (whatever ``TF_CPP_MIN_LOG_LEVEL`` says) and at its first device use (``failed call to
cuInit`` on a machine without a GPU), the converter logs its passes and warns about lookup-table
initializers it cannot serialize (and its int8 calibrator runs ``tf.lite.Interpreter``, which
warns that it is deprecated), LiteRT announces its XNNPACK delegate, and TFDS warns of a
"custom data configuration" and draws progress bars while it generates a dataset.

Every silencer here is scoped to the kzoo call that causes the noise and restores what it
changed, so the logging configuration of the user's own code is left alone. The one process-wide
setting is ``TF_CPP_MIN_LOG_LEVEL``: :func:`import_tensorflow` (run by ``import kzoo``) sets it
to ``"3"`` (TensorFlow's C++ info, warning and error lines hidden) when it is unset and
TensorFlow is not imported yet; a value the user set is kept. Errors still raise as exceptions
that carry their message.

``set_verbose(True)`` (``kzoo --verbose``) turns every silencer off. This module imports nothing
heavy: the command line uses it before it imports TensorFlow.
"""

import contextlib
import logging
import os
import re
import sys
import warnings

TF_CPP_MIN_LOG_LEVEL = "3"

_verbose = False


def set_verbose(enabled=True):
    """Show (True) or hide (False, the default) what kzoo otherwise silences.

    Args:
        enabled: bool. True shows TensorFlow's, the converter's, LiteRT's and TFDS' log lines
            during kzoo's calls; False hides them.

    Example:

    >>> kzoo.quiet.set_verbose(True)   # what `kzoo --verbose` does
    """
    global _verbose
    _verbose = bool(enabled)


def is_verbose():
    """True after ``set_verbose(True)``."""
    return _verbose


@contextlib.contextmanager
def silenced_stderr():
    """Point file descriptor 2 at /dev/null (C++ log lines included) for the block, then
    restore it. Does nothing when verbose."""
    if _verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _DropMessages(logging.Filter):
    def __init__(self, fragments):
        super().__init__()
        self.fragments = fragments

    def filter(self, record):
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        return not any(fragment in message for fragment in self.fragments)


@contextlib.contextmanager
def dropped_log_messages(logger_name, *fragments):
    """Drop the records of the Python logger ``logger_name`` whose message contains one of
    ``fragments`` for the block (a filter on that logger, removed afterwards). Does nothing when
    verbose.

    Args:
        logger_name: str, e.g. ``"tensorflow"`` or ``"absl"``.
        *fragments: str, parts of the messages to drop.

    Example:

    >>> with dropped_log_messages("absl", "Using custom data configuration"):
    ...     builder = Builder(config=config)
    """
    if _verbose:
        yield
        return
    logger = logging.getLogger(logger_name)
    drop = _DropMessages(fragments)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@contextlib.contextmanager
def dropped_warnings(*fragments):
    """Drop the Python warnings whose message contains one of ``fragments`` for the block (the
    warning filters are restored afterwards). Does nothing when verbose.

    Args:
        *fragments: str, parts of the messages to drop.

    Example:

    >>> with dropped_warnings("tf.lite.Interpreter is deprecated"):
    ...     content = converter.convert()
    """
    if _verbose:
        yield
        return
    with warnings.catch_warnings():
        for fragment in fragments:
            warnings.filterwarnings("ignore", message=f"(?s).*{re.escape(fragment)}")
        yield


@contextlib.contextmanager
def exporting():
    """For a SavedModel save or a TFLite conversion: silence fd 2 (the converter's C++ log lines,
    which show when TensorFlow was imported before kzoo could set ``TF_CPP_MIN_LOG_LEVEL``) and
    drop TensorFlow's three-line warning that it cannot serialize the initializers of lookup
    tables (a text model's ``StringLookup``) into a meta graph, which repeats for every function
    although the saved model is correct; and the warning that ``tf.lite.Interpreter`` is
    deprecated, which the converter's int8 calibrator (not kzoo, which runs LiteRT's interpreter)
    causes. A failed conversion still raises with its message."""
    with silenced_stderr(), dropped_log_messages(
            "tensorflow", "Issue encountered when serializing table_initializer"), \
            dropped_warnings("tf.lite.Interpreter is deprecated"):
        yield


def import_tensorflow():
    """Import TensorFlow for kzoo: ``TF_CPP_MIN_LOG_LEVEL`` defaults to ``"3"`` (if unset) and
    the lines its C++ runtime writes while loading are silenced. Once TensorFlow is imported
    (by kzoo or by the user before) this does nothing."""
    if "tensorflow" in sys.modules:
        return
    if not _verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_MIN_LOG_LEVEL)
    with silenced_stderr():
        import tensorflow  # noqa: F401
