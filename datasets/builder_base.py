"""The base of every kzoo TFDS builder."""

import inspect
import pathlib

import tensorflow_datasets as tfds
from etils import epath


class KzooBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A ``GeneratorBasedBuilder`` whose code path is its source file.

    TFDS derives a builder's folder from its module name, which for ``kzoo.datasets.*``
    (installed from ``datasets/`` through ``package_dir``) names no real folder; and its
    resource lookup needs ``importlib_resources``. The file of the class is the truth.
    """

    def __init__(self, *, source_dir=None, **kwargs):
        # A folder holding the builder's source file(s) to read instead of the packaged ones
        # (the tests prepare from each builder's dummy_data).
        self.source_dir = source_dir
        super().__init__(**kwargs)

    def source_file(self, filename, packaged_path):
        """``filename`` from ``source_dir`` when given, else the file an installed package
        ships at ``packaged_path``."""
        if self.source_dir is not None:
            return pathlib.Path(self.source_dir) / filename
        return pathlib.Path(packaged_path)

    def _log_download_bytes(self):
        # TFDS prints "Downloading and preparing dataset" here; a kzoo builder downloads nothing
        # (it generates from code or installed files), so it says nothing.
        pass

    def _log_download_done(self):
        pass

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(inspect.getfile(cls))
