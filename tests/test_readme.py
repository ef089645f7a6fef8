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


def test_toy_preset_numbers(page):
    toy = json.loads((RESULTS / "dpl_vs_nti_toy.json").read_text())
    lean = json.loads((RESULTS / "dpl_vs_nti.json").read_text())
    losers = [c for c in toy["per_scene"] if c["iou_dpl"] <= c["iou_nti"]]
    swaps = [c for c in losers if all(c["map_mass_dpl"][j][1 - j] > c["map_mass_dpl"][j][j] for j in (0, 1))]
    assert f"IoU@0.3 from {toy['iou_nti']:.3f} (NTI) to {toy['iou_dpl']:.3f}" in page
    assert f"gains on {toy['scenes_with_gain']} of {toy['scenes']} scenes" in page
    assert f"within {toy['unet_evals_dpl']['max']:,} UNet evaluations per image" in page
    assert f"It still loses on {len(losers)} of the {toy['scenes']}; two of those are swaps" in page and len(swaps) == 2
    assert sum(c["token_updates"] == 0 for c in lean["per_scene"]) > lean["scenes"] / 2  # "no update on most toy scenes"


def test_calibration_numbers():
    readme = _one_line((ROOT / "README.md").read_text())
    calibration = json.loads((RESULTS / "calibrate_thresholds.json").read_text())
    assert f"(`calibrate_thresholds.json`: {calibration['beta_bg']} instead of the paper's {calibration['reference_beta_bg']})" in readme
    assert f"on {calibration['scenes']} scenes that are not ToyMO-Set's" in readme


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
