import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub


@pytest.fixture(scope="session")
def bundle():
    from dpl_nb.models import tiny_bundle
    return tiny_bundle(seed=0)
