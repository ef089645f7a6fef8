"The fast-DPL cost benchmark: its per-method record (edit_leakage's, with the reconstruction) and its summary."
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dpl_cost  # noqa: E402
from edit_leakage import INVERSIONS, method_record  # noqa: E402

from dpl_nb.dpl import DPL_PRESETS  # noqa: E402


@pytest.fixture(scope="module")
def toy_state():
    from dpl_nb.models import load_bundle
    from dpl_nb.toyjudge import load_judge
    from dpl_nb.toymoset import toymo_set
    return load_bundle("toy"), load_judge(), toymo_set()[0]


@pytest.mark.parametrize("method, evals", [("npi", 3), ("direct", 9)])
def test_inversions_alone_are_recorded_with_their_reconstruction(toy_state, method, evals):
    bundle, judge, scene = toy_state
    record = method_record(bundle, judge, scene, method, 3, recon=True)
    assert record["unet_evals"] == evals and record["token_updates"] == 0
    if method == "direct":  # its corrections make the reconstruction exact: no finite PSNR
        assert record["recon_psnr"] is None
    else:
        assert 10 < record["recon_psnr"] < 60
    assert "recon_psnr" not in method_record(bundle, judge, scene, method, 3)  # only when asked


def test_every_column_is_an_inversion_or_a_preset():
    for method, name in dpl_cost.METHODS.items():
        assert name in INVERSIONS if not method.startswith("dpl_") else name in DPL_PRESETS


def test_summary_counts_identical_reconstructions_and_the_worst_cost():
    row = dict(unet_evals=100.0, seconds=1.0, recon_psnr=30.0, iou03=0.5, iou_best=0.7, success=True,
               distractor_kept=False, bg_psnr=25.0, token_updates=0)
    records = [{m: dict(row) for m in dpl_cost.METHODS} for _ in range(3)]
    records[1]["npi"].update(unet_evals=400.0, recon_psnr=None, distractor_kept=True)
    out = dpl_cost.summarise(records)["npi"]
    assert (out["evals_median"], out["evals_max"], out["recon_identical"]) == (100.0, 400.0, 1)
    assert out["recon_psnr"] == 30.0 and out["distractor_kept"] == pytest.approx(1 / 3)
