import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub


@pytest.fixture(scope="session")
def bundle():
    from dpl_nb.models import tiny_bundle
    return tiny_bundle(seed=0)


@pytest.fixture(scope="session")
def damped():
    "The tiny model with a damped output layer, shared by the inversion and P2P tests"
    from tiny_scenes import damped_tiny_bundle
    return damped_tiny_bundle()


@pytest.fixture(scope="session")
def nti(damped):
    "A 10-step canonical null-text inversion of the test drawing with `damped`, made once per session"
    from tiny_scenes import nti_inversion
    bundle, inversion = nti_inversion(10)
    assert bundle is damped
    return inversion
