"""Compare dpl_nb with the official DPL code's outputs on the same model, image and prompt, quantity by quantity.

Reads what `run_reference.sh` wrote (the reference's results folder for one image) and recomputes each quantity
with dpl_nb on the same inputs, then writes, per quantity, the max abs and relative difference (per step where there
are steps) and a verdict: `equal` (within float tolerance), `documented` (a difference a chapter names; the
reason is recorded) or `bug`. Writes benchmarks/results/conformance.json (atomically), keeping the quantities it
does not compute.

Covered: stage B of the reference (`_2_DDIM_inv.py`): the DDIM-inversion trajectory, the self-attention clusters at
32x32 and the background mask; stage C (`_3_dpl_inv.py` with DPL.sh's settings): per denoising step the learned
token embeddings, the null-text embeddings and the cross-attention maps of the last token pass, and the final
reconstruction. dpl_nb runs its `reference` preset (`paper` with the reference's BPE-piece initialisation), given
the reference's background mask as stage C reads it. The edits (stage D) follow.

    python benchmarks/conformance/compare.py REFERENCE_RESULTS MODEL IMAGE --prompt "a {cat} and a {dog}" --steps 10
                                             [--null-steps 51]
"""
import argparse
import json
import pickle
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
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
from dpl_nb.dpl import DPL_PRESETS, dpl_invert  # noqa: E402
from dpl_nb.inversion import Inversion, reconstruct  # noqa: E402
from dpl_nb.models import load_bundle, to_pil  # noqa: E402
from dpl_nb.prompts import parse_prompt  # noqa: E402

FLOAT_RTOL = 1e-5  # `equal`: relative difference below this (fp32)
STAGE_C_RTOL = 1e-4  # `equal` for what DPL's optimisers make (tokens, nulls, maps): the tolerance, fp32
DPL_SH_POSTFIX = "1.0_0.05_0.05_25.0_50.0_25.0_0.3_0.7_0.9_0"  # _3_dpl_inv.py's folder suffix for DPL.sh's settings


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


def reference_background(results: Path) -> torch.Tensor:
    "The background mask as `_3_dpl_inv.py` reads it: BG.png resized to 16x16 by PIL's default filter, nonzero is background"
    seg = np.asarray(Image.open(results / "sd_study" / "BG.png").resize((16, 16))).astype(bool)
    return torch.from_numpy(seg[:, :, -1] if seg.ndim > 2 else seg)


def _per_step(ours: torch.Tensor, theirs: torch.Tensor, note: str) -> dict:
    per_step = [differences(o, t) for o, t in zip(ours, theirs)]
    rel_max = max(d["rel"] for d in per_step)
    return {"per_step": per_step, "rel_max": rel_max, "verdict": "equal" if rel_max <= STAGE_C_RTOL else "bug",
            "note": note}


def our_stage_c(results: Path, bundle, image_path, prompt: str, steps: int, null_steps: int, cache=None):
    "dpl_nb's side of stage C (preset `reference`, the reference's mask): its inversion and decoded reconstruction"
    config = replace(DPL_PRESETS["reference"], nti=replace(DPL_PRESETS["reference"].nti, inner_steps=null_steps))
    background = reference_background(results)
    ours = Inversion.load(cache, bundle) if cache and Path(cache).is_file() else None
    if ours is not None and (ours.num_steps, ours.inner_steps[:1]) != (steps, [null_steps]):
        raise SystemExit(f"{cache} holds another run ({ours.num_steps} steps, {ours.inner_steps[:1]} null updates); "
                         "delete it")
    if ours is None:
        ours = dpl_invert(bundle, reference_image(image_path), prompt, config, num_steps=steps, background=background,
                          generator=0, progress=False)
        if cache:
            ours.save(cache)
    with torch.no_grad():
        picture = bundle.decode(reconstruct(bundle, ours, progress=False))[0]
    return ours, picture, background


def printed_losses(results: Path) -> dict:
    "The token-phase losses `_3_dpl_inv.py` prints (every 10th pass and the last): {(step, pass): (total, at, bg, dj)}"
    text = (results / "stage_c_stdout.txt").read_text() if (results / "stage_c_stdout.txt").is_file() else ""
    pattern = (r"Step (\d+), Attend (\d+) \| Loss: ([-\d.]+), max: ([-\d.]+),BG_loss: ([-\d.]+),"
               r"cosine: ([-\d.]+),")
    return {(int(m[1]), int(m[2])): tuple(float(v) for v in m.groups()[2:]) for m in re.finditer(pattern, text)}


def stage_c(results: Path, bundle, image_path, prompt: str, steps: int, null_steps: int, cache=None) -> dict:
    "DPL's per-step tokens, null embeddings, maps and the reconstruction against `_3_dpl_inv.py`'s files"
    name = next((results / "latents").glob("*.pkl")).stem
    with open(results / f"embed_list_{DPL_SH_POSTFIX}" / f"{name}_cond.pkl", "rb") as f:
        tokens = torch.stack([e.float() for e in pickle.load(f)])  # (T, placeholders, dim)
    with open(results / f"embed_list_{DPL_SH_POSTFIX}" / f"{name}_uncond.pkl", "rb") as f:
        nulls = torch.stack([e.float() for e in pickle.load(f)])  # (T, 1, 77, dim)
    with open(results / f"attn_{DPL_SH_POSTFIX}" / f"{name}.pkl", "rb") as f:
        maps = torch.stack([m.float() for m in pickle.load(f)])  # (T, 16, 16, 77)
    if len(tokens) != steps:
        raise SystemExit(f"the reference's stage C ran {len(tokens)} steps, not {steps}: rerun it with --steps {steps}")
    ours, picture, background = our_stage_c(results, bundle, image_path, prompt, steps, null_steps, cache)
    pixels = np.asarray(to_pil(picture), dtype=np.int16)
    theirs_png = np.asarray(Image.open(results / f"null_inv_recon_{DPL_SH_POSTFIX}" / f"{name}.png").convert("RGB"),
                            dtype=np.int16)
    levels = int(np.abs(pixels - theirs_png).max())
    updates = ours.trace["token_updates"]
    settings = (f"preset `reference` (paper, init='piece'), {null_steps} null-text updates a step on both sides; "
                f"the reference's background mask (16x16, {int(background.sum())} background cells)")
    printed, worst = printed_losses(results), 0.0
    for (i, j), theirs in printed.items():
        mine = ours.trace["token_losses"][i][j]
        worst = max(worst, max(abs(a - b) for a, b in zip((mine["total"], mine["at"], mine["bg"], mine["dj"]), theirs)))
    losses = {"printed_passes": len(printed), "max_abs": worst,
              "verdict": "equal" if printed and worst <= 2e-6 else "bug" if printed else "not compared",
              "note": "the token-phase losses the reference prints with 6 decimals (total, L_at, L_bg, L_dj at every "
                      "10th pass of each step and the last), against dpl_nb's trace; equal: within the print's rounding"}
    return {"dpl_token_losses": losses,
            "dpl_tokens": {**_per_step(ours.token_embeddings, tokens, "the braced words' input embeddings after each "
                                       f"step's token updates (cond_embeddings_list); {settings}"),
                           "token_updates": updates},
            "dpl_null_embeddings": _per_step(ours.null_embeddings, nulls, "each step's fitted null-text embedding "
                                             "(uncond_embeddings_list)"),
            "dpl_maps": _per_step(ours.maps, maps, "16x16 cross maps of each step's last token pass (attention_maps)"),
            "dpl_reconstruction": {"max_levels": levels, "verdict": "equal" if levels <= 1 else "bug",
                                   "note": "the final reconstruction as 8-bit RGB: ours sampled from the inversion, "
                                           "theirs saved by _3_dpl_inv.py; equal allows one level of rounding"}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="the reference's results folder for the image (…/output/<image name>)")
    parser.add_argument("model", help="the model folder both ran (make_model.py)")
    parser.add_argument("image")
    parser.add_argument("--prompt", required=True, help="the prompt with the nouns braced")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--null-steps", type=int, default=51, help="null-text updates per step the reference ran")
    parser.add_argument("--stages", default="B,C", help="stages to compare: B, C or both")
    parser.add_argument("--ours", default=None, help="a file keeping dpl_nb's stage C inversion (made if absent)")
    parser.add_argument("--only-ours", action="store_true",
                        help="only make dpl_nb's side of stage C (into --ours), e.g. while the reference still runs")
    parser.add_argument("--reference", default=None, help="the official DPL checkout (its commit is recorded)")
    parser.add_argument("--reference-python", default=None,
                        help="the reference environment's python: differences are traced to library versions with it")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "results" / "conformance.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the reference ran with one thread; sums then run in the same order
    bundle = load_bundle(args.model)
    parse_prompt(args.prompt, bundle.tokenizer)  # a malformed prompt fails here
    if args.only_ours:
        if not args.ours:
            raise SystemExit("--only-ours needs --ours FILE")
        our_stage_c(Path(args.results), bundle, args.image, args.prompt, args.steps, args.null_steps, args.ours)
        return print(f"wrote {args.ours}")
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"benchmark": "conformance", "quantities": {}}
    stages = set(args.stages.upper().split(","))
    if "B" in stages:
        result["quantities"].update(stage_b(Path(args.results), bundle, args.image, args.prompt, args.steps,
                                            args.reference_python))
    if "C" in stages:
        result["quantities"].update(stage_c(Path(args.results), bundle, args.image, args.prompt, args.steps,
                                            args.null_steps, args.ours))
        result["stage_c"] = {"steps": args.steps, "null_steps": args.null_steps, "token_steps": 21,
                              "settings": "DPL.sh's, but for the steps and null-text updates (the same on both sides)"}
    if "B" in stages:
        result["steps"] = args.steps
    result.update(model=args.model, image=Path(args.image).name, prompt=args.prompt,
                  reference_commit=git_commit(args.reference) if args.reference else "unknown",
                  dpl_nb=dpl_nb.__version__, torch=torch.__version__, machine=platform.machine())
    for name, q in result["quantities"].items():
        print(f"{name}: {q['verdict']}", {k: v for k, v in q.items() if k in ("rel_max", "agreement", "max_levels")})
    print(f"wrote {write_result(result, out)}")


if __name__ == "__main__":
    main()
