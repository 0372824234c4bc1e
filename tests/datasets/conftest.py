import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One data dir for the whole session: each builder config is prepared once."""
    return str(tmp_path_factory.mktemp("kzoo_data"))
