"""Small data files shipped with kzoo, to try the readers of your own data on.

- ``pairs.tsv``: 400 English -> Pig Latin sentence pairs, tab-separated (the layout of the
  Tatoeba / Anki files): ``kzoo.datasets.from_text_pairs``.
- ``series.csv``: 720 hourly Seattle temperatures of January 2010 (``date``, ``temp`` in °F, from
  vega_datasets' ``seattle-temps``): ``kzoo.datasets.from_csv``.
"""

import pathlib

from kzoo.checks import check_choice

EXAMPLE_FILES = ("pairs.tsv", "series.csv")


def example_file(name):
    """The path of an example data file kzoo ships.

    Args:
        name: ``"pairs.tsv"`` (English -> Pig Latin sentence pairs) or ``"series.csv"``
            (hourly temperatures).

    Returns:
        The file's absolute path, a str.

    Raises:
        ValueError: an unknown name (the message lists the files).

    Example:

    ```python
    import kzoo.datasets as kd

    print(open(kd.example_file("pairs.tsv"), encoding="utf-8").readline().strip())
    ```
    """
    check_choice("example_file", "name", name, EXAMPLE_FILES)
    return str(pathlib.Path(__file__).resolve().parent / name)
