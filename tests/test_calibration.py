"The threshold calibration's scenes (never a benchmark's) and its choice of beta_bg over several seeds."
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from calibrate_thresholds import BENCHMARK_SEEDS, calibration_scenes, choose  # noqa: E402

from dpl_nb.toymoset import scenes_checksum, toymo_set  # noqa: E402
from dpl_nb.toyworld import is_distractor  # noqa: E402


@pytest.mark.parametrize("seed", BENCHMARK_SEEDS)
def test_calibration_refuses_the_benchmarks_seeds(seed):
    with pytest.raises(ValueError, match="benchmark"):
        calibration_scenes(4, "coats", seed)


def test_calibration_scenes_are_chosen_by_kind_and_are_no_benchmark_scene():
    scenes = calibration_scenes(0, "coats", 5, distractor=3, ordinary=2)
    assert [is_distractor(s) for _, s in scenes].count(True) == 3 and len(scenes) == 5
    benchmark = {scenes_checksum([s]) for seed in BENCHMARK_SEEDS for s in toymo_set(seed, world="coats")}
    assert not {scenes_checksum([s]) for _, s in scenes} & benchmark
    assert len(calibration_scenes(4, "coats", 7)) == 4  # the balanced default: half look-alikes


def _row(seed, scene, beta, iou, success, kept, psnr, evals=500, distractor=True):
    return dict(seed=seed, scene=scene, beta_bg=beta, iou=iou, success=success, distractor_kept=kept,
                bg_psnr=psnr, unet_evals=evals, token_updates=1, distractor=distractor)


def test_choose_keys_scenes_by_seed_and_ranks_edits_first():
    rows = [_row(s, 0, None, iou, True, False, 20) for s, iou in ((7, 0.5), (5, 0.3))]  # one scene index, two seeds
    rows += [_row(7, 0, 0.1, 0.7, True, True, 30), _row(5, 0, 0.1, 0.7, True, False, 30)]  # keeps 1 of 2
    rows += [_row(7, 0, 0.05, 0.6, True, True, 29), _row(5, 0, 0.05, 0.6, True, True, 29)]  # keeps 2 of 2
    rows += [_row(7, 0, 0.01, 0.9, False, True, 35), _row(5, 0, 0.01, 0.9, False, True, 35)]  # edits fail
    table, chosen = choose(rows, [0.1, 0.05, 0.01], "edit")
    assert chosen == 0.05 and table["0.1"]["kept_lookalike"] == 0.5
    assert table["0.05"]["iou_gain"] == pytest.approx(0.2)  # each DPL run against its own seed's NTI run
    assert choose(rows, [0.1, 0.05, 0.01], "iou")[1] == 0.01
    rows[-1]["unet_evals"] = 5000  # over the cost target: never chosen
    assert choose(rows, [0.1, 0.05, 0.01], "iou")[1] == 0.1
