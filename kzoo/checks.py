"""Argument checks shared by layers, model builders and dataset loaders.

Each check returns the value it accepts and raises a ``ValueError`` that names the owner
(``where``: a layer, a builder, ``"dataset 'adding'"``), the argument, what was expected and
what was given. This module imports nothing heavy: every part of kzoo, and the ``kzoo`` command
before it imports TensorFlow, can use it.
"""

import difflib


def fail(where, message):
    """Raises the ``ValueError`` of a check: ``"{where}: {message}"``.

    Args:
        where: the owner of the argument (a layer's or builder's name), or an empty string for
            the message alone.
        message: what is wrong.

    Raises:
        ValueError: always.
    """
    raise ValueError(f"{where}: {message}" if where else message)


def close_matches(value, choices, n=1):
    """The names in ``choices`` closest to ``value``, for "did you mean" hints.

    Args:
        value: the name given.
        choices: the valid names.
        n: the most names to return.

    Returns:
        A list of at most ``n`` strings, the closest first (empty when none is close).
    """
    return difflib.get_close_matches(str(value), [str(c) for c in choices], n=n, cutoff=0.5)


def check_choice(where, name, value, choices):
    """Checks that ``value`` is one of ``choices``; a near miss (``"lstmm"``) is named.

    Args:
        where: the owner of the argument.
        name: the argument's name.
        value: the value given.
        choices: the valid values.

    Returns:
        ``value``.

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    if value in choices:
        return value
    close = close_matches(value, choices)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    fail(where, f"`{name}` must be one of {tuple(choices)}, got {value!r}{hint}")


def check_positive_int(where, name, value, allow_none=False, minimum=1):
    """Checks that ``value`` is an integer of at least ``minimum`` (a bool is not one).

    Args:
        where: the owner of the argument.
        name: the argument's name.
        value: the value given.
        allow_none: whether None is accepted too.
        minimum: the smallest value accepted (default 1: a positive integer).

    Returns:
        ``value``.

    Raises:
        ValueError: ``value`` is not an integer, or is below ``minimum``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        fail(where, f"`{name}` must be {expected}, got {value!r}")
    return value


def check_rate(where, name, value):
    """Checks that ``value`` is a rate in [0, 1) (a dropout rate).

    Args:
        where: the owner of the argument.
        name: the argument's name.
        value: the value given.

    Returns:
        ``value`` as a float.

    Raises:
        ValueError: ``value`` is not a number in [0, 1).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 <= float(value) < 1.0:
        fail(where, f"`{name}` must be a float in [0, 1), got {value!r}")
    return float(value)
