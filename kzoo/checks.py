"""Argument checks shared by layers and model builders: each raises a ValueError that names the
owner, the argument, what was expected and what was given."""

import difflib


def fail(where, message):
    raise ValueError(f"{where}: {message}" if where else message)


def close_matches(value, choices, n=1):
    """The names in ``choices`` closest to ``value`` (for "did you mean" hints)."""
    return difflib.get_close_matches(str(value), [str(c) for c in choices], n=n, cutoff=0.5)


def check_choice(where, name, value, choices):
    """``value`` must be one of ``choices``; a near miss (``"lstmm"``) is named in the error."""
    if value in choices:
        return value
    close = close_matches(value, choices)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    fail(where, f"`{name}` must be one of {tuple(choices)}, got {value!r}{hint}")


def check_positive_int(where, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        fail(where, f"`{name}` must be a positive integer, got {value!r}")
    return value


def check_rate(where, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 <= float(value) < 1.0:
        fail(where, f"`{name}` must be a float in [0, 1), got {value!r}")
    return float(value)
