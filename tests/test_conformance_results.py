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
