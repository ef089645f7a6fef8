"The numbers the README and the book's first page quote from benchmark result files are the files' numbers."
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _index_text() -> str:
    cells = json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _one_line(text: str) -> str:
    return " ".join(text.split())  # so that a quote may wrap anywhere


@pytest.fixture(scope="module", params=["README.md", "nbs/index.ipynb"])
def page(request) -> str:
    return _one_line((ROOT / "README.md").read_text() if request.param == "README.md" else _index_text())


def test_edit_leakage_numbers(page):
    "The demo paragraph's aggregate numbers are edit_leakage.json's (benchmark seed) and its held-out seed's"
    bench = json.loads((RESULTS / "edit_leakage.json").read_text())
    held = json.loads((RESULTS / "edit_leakage_seed11.json").read_text())
    d, h = bench["distractor"], held["distractor"]
    n = sum(s["distractor"] for s in bench["scenes"])
    assert f"Over all {n} look-alike scenes at {bench['steps']} steps" in page
    assert (f"keeps the other object in {d['nti']['distractor_kept']:.3f} of the scenes and from DPL's "
            f"(preset `toy`) in {d['dpl']['distractor_kept']:.3f}") in page
    assert f"the new noun seen in {d['dpl']['success']:.2f} of them against {d['nti']['success']:.2f}" in page
    assert f"{d['dpl']['bg_psnr']:.1f} dB outside the edited object against {d['nti']['bg_psnr']:.1f} dB" in page
    assert (f"(`edit_leakage_seed11.json`), {h['nti']['distractor_kept']:.3f} against "
            f"{h['dpl']['distractor_kept']:.3f}") in page


def test_the_from_a_pipeline_snippet_runs(tmp_path):
    "The README's 'From a diffusers pipeline' code, on the tiny SD 1.x model saved with fp16 weights, on the CPU"
    import re
    import warnings

    import torch
    from diffusers import StableDiffusionPipeline
    from dpl_nb.models import tiny_bundle
    text = (ROOT / "README.md").read_text()
    code = re.search(r"### From a diffusers pipeline.*?```python\n(.*?)```", text, re.S).group(1)
    b = tiny_bundle(seed=0)
    StableDiffusionPipeline(b.vae, b.text_encoder, b.tokenizer, b.unet, b.scheduler, safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False).save_pretrained(tmp_path, variant="fp16")
    code = code.replace("/path/to/stable-diffusion-v1-4", str(tmp_path)).replace('"cuda"', '"cpu"')
    scope = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # half precision on a CPU
        exec(compile(code, "README.md", "exec"), scope)
    sd = scope["sd"]
    assert sd.unet.dtype == torch.float16 and sd.vae.dtype == torch.float32 and sd.model_id == str(tmp_path.resolve())
    assert type(sd.scheduler).__name__ == "DDIMScheduler"


def test_demo_figure_is_the_benchmarks_first_scenes_and_the_prose_reads_it(page):
    "demo.json (beside the figure) has the verdicts the demo paragraph describes, and equals the benchmark's records"
    demo = json.loads((ROOT / "nbs" / "images" / "demo.json").read_text())
    bench = {r["scene"]: r for r in map(json.loads, (RESULTS / "edit_leakage_scenes.jsonl").read_text().splitlines())}
    assert demo["preset"] == "toy" and demo["steps"] == 50 and [s["scene"] for s in demo["scenes"]] == [0, 1, 5, 6]
    scenes = {s["scene"]: s for s in demo["scenes"]}
    for index, row in scenes.items():  # the demo's swap is the benchmark's: same verdicts, same background PSNR
        for method in ("nti", "dpl"):
            record = bench[index][method]
            assert (row[method]["success"], row[method]["kept"]) == (record["success"], record["distractor_kept"])
            assert abs(row[method]["bg_psnr"] - record["bg_psnr"]) < 0.01
    said = {  # scene: (NTI swapped, NTI kept, DPL swapped, DPL kept), as the paragraph tells them
        0: (True, False, True, False), 1: (False, True, False, True), 5: (None, False, True, True),
        6: (None, False, True, True)}
    for index, expected in said.items():
        got = (scenes[index]["nti"]["success"], scenes[index]["nti"]["kept"],
               scenes[index]["dpl"]["success"], scenes[index]["dpl"]["kept"])
        assert all(e is None or e == g for e, g in zip(expected, got)), (index, got)
    assert "In scenes 5 and 6 NTI's swap changes the giraffe beside the panda" in page
    assert "enough for the judge to call it changed" in page and "Scene 1 is a swap the judge accepts from neither" in page
