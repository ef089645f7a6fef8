"The claims run: ablation configs, resumable records, and the verdicts of summarise on hand-made records."
import json

import numpy as np
import pytest

from dpl_nb.dpl import DPL_PRESETS
from dpl_nb.experiments import (ABLATION, METHODS, ablation_config, append_record, compact_records, read_records,
                                summarise)
from dpl_nb.metrics import THRESHOLDS


def fake_record(scene: int, dpl_gain: float, ablation_best: str = "all three", dpl_edit_better: bool = True) -> dict:
    base = np.linspace(0.5, 0.0, len(THRESHOLDS))
    methods = {m: dict(iou_sweep=(base + (dpl_gain if m.startswith("dpl") else 0)).tolist(), iou=0.3,
                       unet_evals=100 * (k + 1), seconds=1.0) for k, m in enumerate(METHODS)}
    ablation = {name: (0.5 if name == ablation_best else 0.3 - 0.01 * k) for k, name in enumerate(ABLATION)}
    good, bad = dict(success=True, distractor_preserved=True, psnr=30.0, ssim=0.9), \
        dict(success=False, distractor_preserved=False, psnr=25.0, ssim=0.8)
    edits = {"nti": bad, "dpl-lean": good} if dpl_edit_better else {"nti": good, "dpl-lean": bad}
    return dict(scene=scene, prompt="a red {circle} and a blue {square}", distractor=scene % 2 == 0, steps=50,
                methods=methods, ablation=ablation, edits=edits, edits_shape=edits)


def test_ablation_config():
    assert ablation_config(("bg", "dj")).losses.lambda_at == 0 and ablation_config(("bg", "dj")).losses.lambda_bg == 0.05
    assert ablation_config(ABLATION["all three"]) == DPL_PRESETS["lean"]
    for bad in ((), ("at", "entropy")):
        with pytest.raises(ValueError, match="subset"):
            ablation_config(bad)


def test_records_survive_a_crash_mid_line(tmp_path):
    path = tmp_path / "claims.jsonl"
    append_record(path, fake_record(0, 0.1))
    with open(path, "a") as f:
        f.write('{"scene": 1, "prom')
    assert list(read_records(path)) == [0]
    append_record(path, fake_record(2, 0.1))  # the next record gets a line of its own
    append_record(path, fake_record(0, 0.2))  # scene 0 made again: the last line counts
    assert sorted(read_records(path)) == [0, 2] and read_records(path)[0] == fake_record(0, 0.2)
    assert compact_records(path) == 2  # the old scene 0 and the half-written line
    assert [json.loads(line)["scene"] for line in path.read_text().splitlines()] == [0, 2]
    assert read_records(path)[0] == fake_record(0, 0.2)
    assert read_records(tmp_path / "none.jsonl") == {}


def test_summarise_verdicts():
    holds = summarise({i: fake_record(i, 0.1) for i in range(4)})
    assert holds["scenes"] == 4 and holds["distractor_scenes"] == 2
    assert all(holds["claims"].values()), holds["claims"]
    assert holds["cost"]["dpl-paper"]["unet_evals_max"] == 300
    fails = summarise({i: fake_record(i, -0.1, ablation_best="L_bg", dpl_edit_better=False) for i in range(4)})
    assert not any(fails["claims"].values()), fails["claims"]
    json.dumps(holds)
    with pytest.raises(ValueError, match="no scene records"):
        summarise({})
