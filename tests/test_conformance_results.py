"The committed conformance result (benchmarks/conformance) is complete and has no open bug"
import json
from pathlib import Path

RESULT = Path(__file__).parents[1] / "benchmarks" / "results" / "conformance.json"


def test_every_quantity_has_a_verdict_and_no_bug():
    result = json.loads(RESULT.read_text())
    quantities = result["quantities"]
    assert {"ddim_inversion", "clusters_32", "background_mask"} <= set(quantities)
    for name, q in quantities.items():
        assert q["verdict"] in ("equal", "documented"), f"{name}: {q['verdict']}"
        if q["verdict"] == "documented":
            assert q.get("reason"), f"{name} is documented but gives no reason"
    assert len(result["reference_commit"]) == 40  # the reference's checkout is recorded
    steps = quantities["ddim_inversion"]["per_step"]
    assert len(steps) == result["steps"] + 1 and max(s["rel"] for s in steps) < 1e-5


def test_stage_c_covers_the_loop_within_the_tolerance():
    "DPL's loop (tokens, null embeddings, maps, printed losses, reconstruction) against the official code"
    result = json.loads(RESULT.read_text())
    quantities, stage_c = result["quantities"], result["stage_c"]
    for name in ("dpl_tokens", "dpl_null_embeddings", "dpl_maps"):
        q = quantities[name]
        assert len(q["per_step"]) == stage_c["steps"] and q["rel_max"] == max(s["rel"] for s in q["per_step"])
        assert q["rel_max"] <= 1e-4 and q["verdict"] == "equal", name
    assert quantities["dpl_token_losses"]["printed_passes"] >= 3 * stage_c["steps"]
    assert quantities["dpl_reconstruction"]["max_levels"] <= 1
