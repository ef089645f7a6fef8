"Stale parts of claims records: each method's settings fingerprint, the jobs that remake stale methods, and one remake."
import dataclasses

from dpl_nb import experiments
from dpl_nb.dpl import DPL_PRESETS
from dpl_nb.experiments import (EDITED, METHODS, claims_job, claims_jobs, method_settings, settings_digest,
                                stale_methods)


def record(scene: int, settings: dict | None = None, edits_shape: bool = True, methods=METHODS) -> dict:
    "A hand-made record (only the keys the jobs look at), with `settings` if given"
    edits = {m: dict(success=True) for m in EDITED}
    made = dict(scene=scene, steps=50, methods={m: dict(iou=0.3) for m in methods}, ablation={}, edits=edits)
    if edits_shape:
        made["edits_shape"] = edits
    if settings is not None:
        made["settings"] = settings
    return made


def test_fingerprints():
    toy = DPL_PRESETS["toy"]
    assert settings_digest(dataclasses.replace(toy)) == settings_digest(toy)
    other = dataclasses.replace(toy, losses=dataclasses.replace(toy.losses, beta_bg=0.05))
    assert settings_digest(other) != settings_digest(toy) and len(settings_digest(other)) == 12
    current = method_settings()
    assert list(current) == list(METHODS) and current == method_settings()
    assert len(set(current.values())) == len(METHODS)  # no two methods share settings


def test_current_records_give_no_job():
    done = {i: record(i, method_settings()) for i in range(3)}
    assert claims_jobs(done, range(3)) == []
    assert claims_jobs(done, range(4)) == [(3, None, METHODS)]


def test_stale_methods_and_only_those():
    current = method_settings()
    nti_lean = dict(current, nti="000000000000", **{"dpl-lean": "111111111111"})
    done = {0: record(0, current), 1: record(1, nti_lean), 2: record(2, dict(current, **{"dpl-toy": "x"})),
            3: record(3, current, methods=METHODS[:-1]),  # no dpl-toy at all
            4: record(4, dict(current, **{"dpl-paper": "y"}), edits_shape=False)}
    assert stale_methods(done[1]) == ("nti", "dpl-lean")
    assert claims_jobs(done, range(6)) == [(5, None, METHODS), (1, done[1], ("nti", "dpl-lean")),
                                           (2, done[2], ("dpl-toy",)), (3, done[3], ("dpl-toy",)),
                                           (4, done[4], ("dpl-paper",))]
    # only the indices asked for
    assert claims_jobs(done, [0, 2]) == [(2, done[2], ("dpl-toy",))]


def test_records_without_settings_are_stale_for_dpl_toy_only():
    old = record(0)
    assert stale_methods(old) == ("dpl-toy",)
    assert claims_jobs({0: old}, [0]) == [(0, old, ("dpl-toy",))]
    # without edits_shape as well: its edits are remade too (the same job)
    older = record(1, edits_shape=False)
    assert claims_jobs({1: older}, [1]) == [(1, older, ("dpl-toy",))]


def test_a_changed_preset_makes_its_method_stale(monkeypatch):
    done = {i: record(i, method_settings()) for i in range(2)}
    toy = DPL_PRESETS["toy"]
    monkeypatch.setitem(DPL_PRESETS, "toy", dataclasses.replace(
        toy, losses=dataclasses.replace(toy.losses, beta_bg=toy.losses.beta_bg * 5)))
    assert claims_jobs(done, range(2)) == [(0, done[0], ("dpl-toy",)), (1, done[1], ("dpl-toy",))]


def test_claims_job_dispatch(monkeypatch):
    calls = []
    monkeypatch.setattr(experiments, "scene_record", lambda b, i, s, j, n, a: calls.append(("new", i)) or {"scene": i})
    monkeypatch.setattr(experiments, "remake_methods",
                        lambda b, r, s, j, m, a: calls.append(("remake", m)) or dict(r, remade=list(m)))
    monkeypatch.setattr(experiments, "redo_edits", lambda b, r, s, j: calls.append(("edits",)) or dict(r, edits_shape={}))
    claims_job(None, (0, None, METHODS), None, None)
    claims_job(None, (1, record(1), ("dpl-toy",)), None, None)
    made = claims_job(None, (2, record(2, edits_shape=False), ("dpl-toy",)), None, None)
    claims_job(None, (3, record(3, method_settings(), edits_shape=False), ()), None, None)
    assert calls == [("new", 0), ("remake", ("dpl-toy",)), ("remake", ("dpl-toy",)), ("edits",), ("edits",)]
    assert made["remade"] == ["dpl-toy"] and "edits_shape" in made


def test_remake_one_method():
    "A stale DDIM part of a record is made again on the toy model (3 steps), alone; the rest is kept"
    from dpl_nb.models import load_bundle
    from dpl_nb.toymoset import toymo_set
    bundle, scene = load_bundle("toy"), toymo_set()[5]
    stale = dict(record(5, dict(method_settings(), ddim="old")), steps=3)
    (job,) = claims_jobs({5: stale}, [5])
    assert job == (5, stale, ("ddim",))
    remade = claims_job(bundle, job, scene, judge=None)  # DDIM is not edited: no judge needed
    assert remade["remade"] == ["ddim"] and remade["settings"] == method_settings()
    _, fresh = experiments._method_record(bundle, scene, "ddim", 3)
    assert {k: v for k, v in remade["methods"]["ddim"].items() if k != "seconds"} == \
        {k: v for k, v in fresh.items() if k != "seconds"} and len(fresh["iou_sweep"]) > 1
    assert all(remade["methods"][m] == stale["methods"][m] for m in METHODS if m != "ddim")
    assert all(remade[k] == stale[k] for k in stale if k not in ("methods", "settings"))
    assert claims_jobs({5: remade}, [5]) == []
