"The edit-leakage benchmark's settings: DPL overrides from the command line and the blend-mask coverage it records."
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from edit_leakage import blend_cover, dpl_settings  # noqa: E402

from dpl_nb.dpl import DPL_PRESETS  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_dpl_settings_override_config_and_loss_fields():
    config = dpl_settings("toy", ["anchor=true", "lr=0.01", "beta_bg=0.2", "token_steps=5"])
    toy = DPL_PRESETS["toy"]
    assert (config.lr, config.token_steps) == (0.01, 5)
    assert (config.losses.anchor, config.losses.beta_bg) == (True, 0.2)
    assert config.losses.lambda_bg == toy.losses.lambda_bg and config.nti == toy.nti
    assert dpl_settings("lean", []) == DPL_PRESETS["lean"]
    text = dpl_settings("lean", ["inversion=npi", "at_region=objects"])  # fields that take words
    assert (text.inversion, text.losses.at_region) == ("npi", "objects")


@pytest.mark.parametrize("item, message", [("foo=1", "neither a DPLConfig nor a LossConfig field"),
                                           ("lr=fast", "takes a number"), ("losses=1", "neither")])
def test_dpl_settings_refuse_unknown_fields_and_values(item, message):
    with pytest.raises(SystemExit, match=message):
        dpl_settings("lean", [item])


def test_dpl_settings_keep_the_configs_own_checks():
    with pytest.raises(ValueError, match="lr must be positive"):
        dpl_settings("lean", ["lr=0"])
    with pytest.raises(ValueError, match="inversion must be"):
        dpl_settings("lean", ["inversion=fast"])


def test_blend_cover_is_the_share_of_each_object_and_the_background():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True  # 4 pixels
    masks[1, 2:, 2:] = True  # 4 pixels; the background is the other 8
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, :2, :] = True  # the first object, and 4 background pixels
    assert blend_cover(mask, masks) == [1.0, 0.0, 0.5]
    assert blend_cover(None, masks) == [0.0, 0.0, 0.0]  # no local blend


@pytest.mark.parametrize("name", ["edit_leakage.json", "edit_leakage_seed11.json"])
def test_committed_results_are_the_toy_presets(name):
    "The committed runs were made as `--preset toy --dpl-set ...` before those settings became the preset: the same"
    result = json.loads((RESULTS / name).read_text())
    assert dpl_settings(result["preset"], result["dpl_set"]) == DPL_PRESETS["toy"]
    assert (result["self_replace_steps"], result["cross_replace_steps"], result["blend_threshold"]) == (0.5, 0.8, 0.3)
    assert result["steps"] == 50 and set(result["methods"]) == {"nti", "dpl", "dpl_lean", "direct"}
    assert [sum(s["distractor"] for s in result["scenes"]), sum(not s["distractor"] for s in result["scenes"])] == [40, 20]


def test_redo_runs_only_the_named_methods_and_keeps_the_other_records():
    "`--redo direct` on a recorded scene: `direct` is computed again, the other methods' records stay as they were"
    from edit_leakage import _record
    from dpl_nb.models import TOY_MODEL
    args = dict(model="toy", judge=str(TOY_MODEL / "judge"), seed=7, steps=10, settings={"preset": "toy"},
                methods=("nti", "direct"), preset="toy", dpl_set=[], self_replace=0.5, blend_threshold=0.3,
                cross_replace=0.8, blend_words="both", redo=("direct",))
    fresh = _record((0, dict(args, methods=("direct",))))
    earlier = dict(fresh, nti={"success": "kept as it was"}, direct={"success": "to be replaced"})
    redone = _record((0, args, earlier))
    assert redone["nti"] == {"success": "kept as it was"} and redone["redone"] == ["direct"]
    assert {k: v for k, v in redone["direct"].items() if k != "seconds"} == \
        {k: v for k, v in fresh["direct"].items() if k != "seconds"}


def test_redo_of_dpl_may_change_its_settings_and_reruns_each_scene_once():
    "`--redo dpl` with another --dpl-set: the records join the run, and each scene is redone until it has those settings"
    from edit_leakage import settings_match, to_redo
    old = dict(preset="toy", dpl_set=["anchor=true"], self_replace=0.5, blend_threshold=0.3, cross_replace=0.8)
    new = dict(old, dpl_set=["anchor=true", "beta_bg=0.01"])
    assert settings_match(old, new, ("dpl",)) and not settings_match(old, new, ()) and not settings_match(old, new, ("nti",))
    assert not settings_match(old, dict(new, self_replace=0.4), ("dpl",))  # P2P's settings reach every column
    done = {0: dict(settings=old, redone=["dpl"]), 1: dict(settings=new, redone=["dpl"]), 2: dict(settings=new)}
    assert to_redo(done, [0, 1, 2, 3], ("dpl",), new) == [0, 2]
    assert to_redo(done, [0, 1, 2], ("dpl",), old) == [1, 2]


def test_demo_makes_the_benchmarks_edit():
    "`dpl_nb demo` swaps with the P2P settings of the committed benchmark, so its scenes are the benchmark's first"
    from dpl_nb.cli import DEMO_CROSS_REPLACE, DEMO_SELF_REPLACE
    for name in ("edit_leakage.json", "edit_leakage_seed11.json"):
        run = json.loads((RESULTS / name).read_text())
        assert (run["cross_replace_steps"], run["self_replace_steps"]) == (DEMO_CROSS_REPLACE, DEMO_SELF_REPLACE)
        assert (run["preset"], run["blend_words"]) == ("toy", "both")
