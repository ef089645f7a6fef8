"The committed conformance result (benchmarks/conformance) is complete, has no open bug, and chapters 5 and 8 quote it"
import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
RESULT = ROOT / "benchmarks" / "results" / "conformance.json"
CHAPTER = ROOT / "nbs" / "08_dpl.ipynb"
NOTES = "## Notes: the official code, step by step"
P2P_CHAPTER, P2P_NOTES = ROOT / "nbs" / "05_p2p.ipynb", "## Notes: google's notebook, step by step"
NTI_QUANTITIES = ("nti_ddim_inversion", "nti_null_updates", "nti_null_embeddings", "nti_reconstruction", "nti_maps16")


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
    assert stage_c["steps"] >= 10  # the acceptance: at least 10 denoising steps of DPL
    for name in ("dpl_tokens", "dpl_null_embeddings", "dpl_maps"):
        q = quantities[name]
        assert len(q["per_step"]) == stage_c["steps"] and q["rel_max"] == max(s["rel"] for s in q["per_step"])
        if name != "dpl_tokens" or q["verdict"] == "equal":
            assert q["rel_max"] <= 1e-4 and q["verdict"] == "equal", name
    tokens = quantities["dpl_tokens"]
    if tokens["verdict"] == "documented":  # the tolerance is missed only with the measurement that explains it
        passes = tokens["first_step_passes"]
        layout = passes["first_pass_layout"]
        assert len(passes["grad"]) == len(passes["tokens"]) == 21
        assert layout["official_recorded_vs_recomputed"]["rel"] <= 1e-5  # the official gradient, recomputed
        assert layout["dpl_nb_vs_official_contiguous"]["rel"] <= 1e-5  # dpl_nb's is the official code's, contiguous
        assert layout["official_channels_last_vs_contiguous"]["rel"] > 1e-5  # what the memory layout moves
    assert len(quantities["dpl_tokens"]["token_updates"]) == stage_c["steps"]
    assert quantities["dpl_token_losses"]["printed_passes"] >= 3 * stage_c["steps"]
    assert quantities["dpl_reconstruction"]["max_levels"] <= 1


def test_stage_d_covers_the_edits_and_explains_every_difference():
    "P2P edits of the DPL inversion (word swap, local blend, ...) against _4_image_edit.py, step by step"
    result = json.loads(RESULT.read_text())
    quantities, stage_d = result["quantities"], result["stage_d"]
    assert stage_d["steps"] == result["stage_c"]["steps"]  # edits of the committed stage C inversion
    assert {"dpl_edit_swap", "dpl_edit_blend"} <= set(stage_d["edits"]) <= set(quantities)
    for name in stage_d["edits"]:
        q = quantities[name]
        assert len(q["per_step"]) == stage_d["steps"] and q["rel_max"] == max(s["rel"] for s in q["per_step"])
        for run in ("emulated", "isolated", "on_reference_inversion"):  # measured for every edit
            assert len(q[run]["per_step"]) == stage_d["steps"], (name, run)
        assert q["isolated"]["rel_max"] <= 1e-5, name  # the edit code alone, on the reference's own inversion
        if q["verdict"] == "equal":
            assert q["rel_max"] <= 1e-4
        else:  # documented: the named semantics account for the difference, the rest is stage C's (not a bug)
            assert "chapter 8" in q["reason"] and quantities["dpl_tokens"]["verdict"] != "bug", name
    blend = quantities["dpl_edit_blend"]
    assert len(blend["mask_agreement"]) == stage_d["steps"] == len(blend["isolated"]["mask_agreement"])
    assert min(blend["isolated"]["mask_agreement"]) == 1.0
    assert blend["isolated"]["blend_maps"]["rel_max"] <= 1e-5


def test_stage_n_covers_null_text_inversion_and_p2p():
    "google's null-text notebook (NTI, reconstruction, maps, four P2P edits) against dpl_nb, step by step"
    result = json.loads(RESULT.read_text())
    quantities, stage_n = result["quantities"], result["stage_n"]
    steps = stage_n["steps"]
    assert steps >= 10 and len(stage_n["reference_files"]["null_text_w_ptp.ipynb"]) == 40
    edits = [f"nti_edit_{name}" for name in ("swap", "blend", "reweight", "refine")]
    for name in NTI_QUANTITIES + tuple(edits):
        q = quantities[name]
        assert q["verdict"] in ("equal", "documented"), f"{name}: {q['verdict']}"
        if q["verdict"] == "documented":
            assert "chapter 5" in q.get("reason", ""), f"{name} is documented but gives no reason"
        if name not in ("nti_null_updates", "nti_maps16"):  # per step (the maps: one mean over all steps)
            assert len(q["per_step"]) == steps + (name == "nti_ddim_inversion"), name
            assert q["rel_max"] == max(s["rel"] for s in q["per_step"])
    assert len(quantities["nti_null_updates"]["ours"]) == steps
    assert quantities["nti_reconstruction"]["max_levels"] <= 1
    blend = quantities["nti_edit_blend"]
    assert blend["blend_steps"]["ours"] == blend["blend_steps"]["reference"] == steps - steps // 5
    assert len(blend["mask_agreement"]) == blend["blend_steps"]["reference"]


def _floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _floats(v)
    elif isinstance(value, list):
        for v in value:
            yield from _floats(v)


def _notes_markdown(chapter=CHAPTER, heading=NOTES) -> str:
    cells = json.loads(chapter.read_text())["cells"]
    start = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith(heading))
    end = next((i for i, c in enumerate(cells) if i > start and "".join(c["source"]).startswith("## ")),
               len(cells))  # the next section, or the chapter's end
    return "\n".join("".join(c["source"]) for c in cells[start:end] if c["cell_type"] == "markdown")


def _assert_quotes_the_file(text: str, result: dict):
    values = list(_floats(result))
    quoted = re.findall(r"(\d\.\d+)\s*\\times\s*10\^\{(-?\d+)\}", text)
    assert quoted, "the notes quote no measured number"
    for mantissa, exponent in quoted:
        digits = len(mantissa) - 2
        wanted = f"{mantissa}e{int(exponent):+03d}"
        assert any(f"{v:.{digits}e}" == wanted for v in values), f"{mantissa} x 10^{exponent} is not in {RESULT.name}"


def test_chapter_8_notes_quote_the_file():
    "Every measured number the notes write as $m \\times 10^{e}$ is one of the file's, as are the run's steps"
    result = json.loads(RESULT.read_text())
    text = _notes_markdown()
    _assert_quotes_the_file(text, result)
    steps = {int(n) for n in re.findall(r"(\d+) denoising steps", text)}
    assert steps == {result["stage_c"]["steps"]}, steps
    assert result["reference_commit"][:7] in text


def test_chapter_5_notes_quote_the_file():
    "Chapter 5's notes on google's notebook quote stage N's numbers, steps and notebook version"
    result = json.loads(RESULT.read_text())
    text = _notes_markdown(P2P_CHAPTER, P2P_NOTES)
    _assert_quotes_the_file(text, result)
    steps = {int(n) for n in re.findall(r"(\d+) denoising steps", text)}
    assert steps == {result["stage_n"]["steps"]}, steps
    assert result["stage_n"]["reference_files"]["null_text_w_ptp.ipynb"][:7] in text
