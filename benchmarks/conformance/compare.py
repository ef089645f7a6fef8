"""Compare dpl_nb with the official DPL code's outputs on the same model, image and prompt, quantity by quantity.

Reads what `run_reference.sh` wrote (the reference's results folder for one image) and recomputes each quantity
with dpl_nb on the same inputs, then writes, per quantity, the max abs and relative difference (per step where there
are steps) and a verdict: `equal` (within float tolerance), `documented` (a difference a chapter names; the
reason is recorded) or `bug`. Writes benchmarks/results/conformance.json (atomically), keeping the quantities it
does not compute.

Covered so far (stage B of the reference, `_2_DDIM_inv.py`): the DDIM-inversion trajectory, the self-attention
clusters at 32x32 and the background mask. The token and null-text phases (stage C) and the edits (stage D) follow.

    python benchmarks/conformance/compare.py REFERENCE_RESULTS MODEL IMAGE --prompt "a {cat} and a {dog}" --steps 10
"""
import argparse
import json
import pickle
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import sklearn
import torch
from PIL import Image
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).parents[1]))
import dpl_nb  # noqa: E402
from _results import write_result  # noqa: E402
from dpl_nb.background import find_background  # noqa: E402
from dpl_nb.models import load_bundle, load_image  # noqa: E402
from dpl_nb.prompts import parse_prompt  # noqa: E402

FLOAT_RTOL = 1e-5  # `equal`: relative difference below this (fp32)


def reference_image(path) -> torch.Tensor:
    "The image as the reference hands it to the VAE: resized by PIL's default filter, /255, a channels-last tensor"
    pixels = np.asarray(Image.open(path).convert("RGB").resize((512, 512)), dtype=np.float32)[None] / 255.0
    return torch.from_numpy(2.0 * pixels.transpose(0, 3, 1, 2) - 1.0)  # not made contiguous, as in the reference


def differences(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    "Max abs and relative (Frobenius) difference of two tensors"
    ours, theirs = ours.double().cpu(), theirs.double().cpu()
    return {"max_abs": float((ours - theirs).abs().max()),
            "rel": float((ours - theirs).norm() / theirs.norm().clamp_min(1e-30))}


def git_commit(folder) -> str:
    try:
        return subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def reference_kmeans(python: str, features: np.ndarray, clusters: np.ndarray) -> dict:
    "Run dpl_nb's KMeans call under the reference environment's scikit-learn on `features`; agreement with `clusters`"
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", features)
        code = ("import numpy as np, sklearn, json; from sklearn.cluster import KMeans; "
                f"x = np.load({str(Path(tmp) / 'x.npy')!r}); "
                "labels = KMeans(n_clusters=5, n_init=10, random_state=1).fit(x).labels_; "
                f"np.save({str(Path(tmp) / 'labels.npy')!r}, labels); print(sklearn.__version__)")
        version = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        labels = np.load(Path(tmp) / "labels.npy")
    return {"sklearn": version, "agreement": float((labels.reshape(clusters.shape) == clusters).mean())}


def stage_b(results: Path, bundle, image_path, prompt: str, steps: int, reference_python: str | None) -> dict:
    "DDIM inversion, clusters and background mask against `_2_DDIM_inv.py`'s files"
    name = next((results / "latents").glob("*.pkl")).stem
    with open(results / "latents" / f"{name}.pkl", "rb") as f:  # the reference pickles a list of tensors
        theirs = torch.stack([z.float() for z in pickle.load(f)])
    if len(theirs) != steps + 1:
        raise SystemExit(f"the reference inverted {len(theirs) - 1} steps, not {steps}: rerun it with --steps {steps}")
    out = {}
    for label, image in (("channels_last", reference_image(image_path)),
                         ("contiguous", reference_image(image_path).contiguous())):
        masks, trajectory, stats = find_background(bundle, image, prompt, num_steps=steps, generator=0, progress=False)
        per_step = [differences(o, t) for o, t in zip(trajectory, theirs)]
        out[label] = {"masks": masks, "stats": stats, "per_step": per_step, "rel_max": max(d["rel"] for d in per_step)}
    same, layout = out["channels_last"], out["contiguous"]
    quantities = {"ddim_inversion": {
        "per_step": same["per_step"], "rel_max": same["rel_max"],
        "verdict": "equal" if same["rel_max"] < FLOAT_RTOL else "bug",
        "note": (f"z0 sampled from the VAE posterior with seed 0 as the reference does; given the image as the "
                 f"reference's tensor (channels-last memory). From a contiguous tensor of the same pixels, as "
                 f"load_image makes, the VAE's convolutions round differently: rel up to {layout['rel_max']:.1e}."),
        "rel_max_contiguous_input": layout["rel_max"]}}
    clusters = np.load(results / "sd_study" / "cluster_attn_32_inv_self.npy")
    ours = same["masks"].clusters.numpy()
    agree = float((ours == clusters).mean()) if ours.shape == clusters.shape else 0.0
    with open(results / "attn_inv" / f"{name}_inv_self_avg_dict.pkl", "rb") as f:
        theirs_sa = pickle.load(f)["attn"][32].reshape(same["stats"].self_attention.shape).float()
    ours_sa = same["stats"].self_attention.float()
    scale = float(theirs_sa.sum() / ours_sa.sum())  # the reference's average has rows summing to 1/5, ours to 1
    q = {"agreement": agree, "adjusted_rand": float(adjusted_rand_score(clusters.ravel(), ours.ravel())),
         "self_attention": {**differences(ours_sa * scale, theirs_sa), "scale": scale}, "sklearn": sklearn.__version__,
         "note": "KMeans (5 clusters, 10 inits, seed 1) of the 32x32 self-attention averaged over the inversion"}
    if agree == 1.0:
        q["verdict"] = "equal"
    elif reference_python:  # the same clustering call, run by the reference's scikit-learn on our statistics
        q["reference_sklearn_on_ours"] = reference_kmeans(reference_python, ours_sa.numpy(), clusters)
        q["verdict"] = "documented" if q["reference_sklearn_on_ours"]["agreement"] == 1.0 else "bug"
        q["reason"] = ("chapter 6: scikit-learn's KMeans finds other clusters in other versions; the reference's "
                       "scikit-learn, given dpl_nb's statistics and call, reproduces the reference's clusters")
    else:
        q["verdict"] = "bug"
    quantities["clusters_32"] = q
    bg = np.asarray(Image.open(results / "sd_study" / "BG.png").convert("L")) > 127  # 512x512, nearest from 32x32
    side = same["masks"].background.shape[-1]
    theirs_bg = bg[:: 512 // side, :: 512 // side]
    agree_bg = float((same["masks"].background.numpy() == theirs_bg).mean())
    quantities["background_mask"] = {"agreement": agree_bg, "resolution": side,
                                     "labels": same["masks"].labels, "fallback": same["masks"].fallback,
                                     "verdict": "equal" if agree_bg == 1.0 else "bug",
                                     "note": "BG.png subsampled to the loss resolution, against BackgroundMasks.background"
                                             + ("; every cluster is background on this model, so the check is weak"
                                                if set(same["masks"].labels) == {"BG"} else "")}
    return quantities


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="the reference's results folder for the image (…/output/<image name>)")
    parser.add_argument("model", help="the model folder both ran (make_model.py)")
    parser.add_argument("image")
    parser.add_argument("--prompt", required=True, help="the prompt with the nouns braced")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reference", default=None, help="the official DPL checkout (its commit is recorded)")
    parser.add_argument("--reference-python", default=None,
                        help="the reference environment's python: differences are traced to library versions with it")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "results" / "conformance.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the reference ran with one thread; sums then run in the same order
    bundle = load_bundle(args.model)
    parse_prompt(args.prompt, bundle.tokenizer)  # a malformed prompt fails here
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"benchmark": "conformance", "quantities": {}}
    result["quantities"].update(stage_b(Path(args.results), bundle, args.image, args.prompt, args.steps,
                                        args.reference_python))
    result.update(model=args.model, image=Path(args.image).name, prompt=args.prompt, steps=args.steps,
                  reference_commit=git_commit(args.reference) if args.reference else "unknown",
                  dpl_nb=dpl_nb.__version__, torch=torch.__version__, machine=platform.machine())
    for name, q in result["quantities"].items():
        print(f"{name}: {q['verdict']}", {k: v for k, v in q.items() if k in ("rel_max", "agreement")})
    print(f"wrote {write_result(result, out)}")


if __name__ == "__main__":
    main()
