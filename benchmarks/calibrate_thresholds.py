"""Calibrate DPL's background threshold for a toy model, on scenes that are not the benchmarks'.

DPL's gradual thresholds tau(i) = beta * exp(-i / alpha) were set for Stable Diffusion's attention. They decide whether
DPL acts at all: a step whose first-pass losses are all below them gets no token update. This script measures, for a
grid of beta_bg (the background threshold at step 0; alpha_bg and the other thresholds stay the preset's), the
attention IoU of DPL (preset lean, or --preset with --dpl-set overrides as edit_leakage.py takes them) against
null-text inversion on a calibration set: ToyMO-Set's recipe with other seeds (7, and more with --seeds; never the
benchmarks' 2023 and 11), of the world the model knows. Every inversion is also edited as edit_leakage.py edits (a P2P
swap of the first noun with a local blend, its P2P settings) and judged: success, the other object kept, background
PSNR. Two rules choose beta_bg among the values whose worst case stays under the lean preset's cost target:
- `iou` (default): the largest beta_bg within 0.01 of the best mean IoU@0.3 gain over NTI;
- `edit`: the edits first: success no more than 0.05 below NTI's, then the most look-alike scenes whose other object
  is kept, then the best background PSNR, then the largest beta_bg.
Scenes: per seed --scenes, half of them look-alikes, or the first --distractor look-alike and --ordinary other scenes.
Writes benchmarks/results/calibrate_thresholds.json (the embedded model, lean), calibrate_thresholds_<preset>.json
(another preset) or calibrate_thresholds_<world>.json (a model folder), atomically. Per-run records go to
<out>_runs.jsonl first, so an interrupted run resumes where it stopped.

    python benchmarks/calibrate_thresholds.py [--model toy|FOLDER] [--judge FOLDER] [--rule iou|edit] [--scenes 16]
                                              [--betas 0.7,0.35,0.2,0.1,0.05,0.025,0.01] [--workers 2] [--out FILE]
                                              [--preset lean|toy] [--dpl-set KEY=VALUE ...] [--seeds 7,5]
                                              [--distractor D --ordinary O] [--self-replace 0.5]
"""
import argparse
import dataclasses
from concurrent.futures import ProcessPoolExecutor
import json
from pathlib import Path

import numpy as np
import torch

import dpl_nb
from _results import machine, write_result
from _toymo import balanced_scenes
from dpl_vs_nti import LEAN_TARGET_MAX
from edit_leakage import chosen_scenes, dpl_settings, method_record
from dpl_nb.models import TOY_MODEL, load_bundle
from dpl_nb.toyworld import is_distractor
from dpl_nb.toymoset import scenes_checksum, toymo_set
from dpl_nb.toymodel import bundle_world
from dpl_nb.toyjudge import load_judge

CALIBRATION_SEED = 7  # ToyMO-Set is seed 2023
BENCHMARK_SEEDS = (2023, 11)  # edit_leakage.json and its held-out seed: never calibrated on
RESULTS = Path(__file__).parent / "results"


def calibration_scenes(n: int, world: str = "shapes", seed: int = CALIBRATION_SEED, distractor: int | None = None,
                       ordinary: int | None = None):
    """`n` scenes of ToyMO-Set's recipe with a calibration seed, half distractors (or the first `distractor` look-alike
    and `ordinary` other ones); none of them is a scene of the benchmarks' seeds"""
    if seed in BENCHMARK_SEEDS:
        raise ValueError(f"seed {seed} is a benchmark's (edit_leakage.json, its held-out seed): calibrate on another")
    if distractor is None and ordinary is None:
        scenes = balanced_scenes(n, toymo_set(seed, world=world))
    else:
        scenes = chosen_scenes(world, seed, distractor or 0, ordinary or 0)
    benchmark = {scenes_checksum([s]) for b in BENCHMARK_SEEDS for s in toymo_set(b, world=world)}
    assert not any(scenes_checksum([s]) in benchmark for _, s in scenes), "a calibration scene is a benchmark scene"
    return scenes


_STATE = {}


def _key(run: dict) -> tuple:
    "A run's scene: (seed, index); runs recorded before --seeds are the calibration seed's"
    return run.get("seed", CALIBRATION_SEED), run["scene"]


def run(job) -> dict:
    """One inversion of one calibration scene (NTI when beta_bg is None, else the DPL config with that beta_bg),
    edited and judged"""
    seed, index, beta_bg, args = job
    torch.set_num_threads(1)
    if not _STATE:
        bundle = load_bundle(args["model"])
        _STATE.update(bundle=bundle, judge=load_judge(args["judge"]), world=bundle_world(bundle))
    if seed not in _STATE:
        _STATE[seed] = dict(calibration_scenes(args["scenes"], _STATE["world"], seed, args["distractor"],
                                               args["ordinary"]))
    scene = _STATE[seed][index]
    torch.manual_seed(0)
    config = None
    if beta_bg is not None:
        base = dpl_settings(args["preset"], args["dpl_set"])
        config = dataclasses.replace(base, losses=dataclasses.replace(base.losses, beta_bg=beta_bg))
    record = method_record(_STATE["bundle"], _STATE["judge"], scene, config, 50, args["self_replace"])
    record.pop("edited_png")
    return dict(seed=seed, scene=index, beta_bg=beta_bg, distractor=is_distractor(scene), prompt=scene.braced,
                iou=record.pop("iou03"), **record)


def summary(runs: list[dict], nti: dict) -> dict:
    "Means over `runs` (one beta_bg, or NTI): IoU and its gain over NTI, cost, and the edits where they were made"
    gains = [r["iou"] - nti[_key(r)]["iou"] for r in runs]
    row = dict(iou_dpl=float(np.mean([r["iou"] for r in runs])), iou_gain=float(np.mean(gains)),
               share_with_gain=float(np.mean([g > 0 for g in gains])),
               scenes_acted=sum(r["token_updates"] > 0 for r in runs),
               unet_evals_mean=float(np.mean([r["unet_evals"] for r in runs])),
               unet_evals_max=max(r["unet_evals"] for r in runs))
    if all("success" in r for r in runs):  # records from before the edits were measured have none
        hard = [r for r in runs if r["distractor"]]
        psnrs = [r["bg_psnr"] for r in runs if r["bg_psnr"] is not None]
        row.update(success=float(np.mean([r["success"] for r in runs])),
                   kept_lookalike=float(np.mean([r["distractor_kept"] for r in hard])) if hard else None,
                   bg_psnr=float(np.mean(psnrs)) if psnrs else None)
    return row


def choose(rows: list[dict], betas: list[float], rule: str = "iou", tolerance: float = 0.01) -> tuple[dict, float]:
    "Per-beta summary (and NTI's) and the chosen beta_bg by `rule`, among the values whose worst case is in budget"
    nti = {_key(r): r for r in rows if r["beta_bg"] is None}
    table = {str(beta): summary([r for r in rows if r["beta_bg"] == beta], nti) for beta in betas}
    allowed = [b for b in betas if table[str(b)]["unet_evals_max"] < LEAN_TARGET_MAX]
    if rule == "edit":
        floor = summary(list(nti.values()), nti)["success"] - 0.05
        rank = lambda b: (table[str(b)]["success"] >= floor - 1e-9, table[str(b)]["kept_lookalike"],
                          round(table[str(b)]["bg_psnr"] or 0.0, 1), b)
        return table, max(allowed, key=rank)
    best = max(table[str(b)]["iou_gain"] for b in allowed)
    return table, max(b for b in allowed if table[str(b)]["iou_gain"] >= best - tolerance)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="toy", help="toy (the embedded model) or a toy model folder")
    parser.add_argument("--judge", default=None, help="judge folder (default: the model folder's judge/)")
    parser.add_argument("--rule", default="iou", choices=("iou", "edit"), help="how beta_bg is chosen (see above)")
    parser.add_argument("--scenes", type=int, default=16, help="calibration scenes per seed, half of them distractors")
    parser.add_argument("--distractor", type=int, default=None, help="instead of --scenes: look-alike scenes per seed")
    parser.add_argument("--ordinary", type=int, default=None, help="instead of --scenes: other scenes per seed")
    parser.add_argument("--seeds", default=str(CALIBRATION_SEED), help="ToyMO-Set seeds of the calibration scenes")
    parser.add_argument("--betas", default="0.7,0.35,0.2,0.1,0.05,0.025,0.01", help="beta_bg values; 0.7 is the reference's")
    parser.add_argument("--preset", default="lean", help="the DPL preset whose beta_bg is swept (lean, toy, ...)")
    parser.add_argument("--dpl-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a DPLConfig or LossConfig field of the preset, as edit_leakage.py takes it")
    parser.add_argument("--self-replace", type=float, default=0.4,
                        help="P2P's self_replace_steps of the edits (edit_leakage.py's benchmark runs use 0.5)")
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    betas = [float(b) for b in args.betas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if bad := [s for s in seeds if s in BENCHMARK_SEEDS]:
        raise SystemExit(f"--seeds {args.seeds}: {bad} are the benchmarks' seeds; calibrate on others (e.g. 7,5)")
    base = dpl_settings(args.preset, args.dpl_set)  # a bad preset or --dpl-set fails before any scene runs
    folder = TOY_MODEL if args.model == "toy" else Path(args.model)
    judge = args.judge or str(folder / "judge")
    if not (Path(judge) / "judge.safetensors").is_file():
        raise SystemExit(f"no judge at {judge}: train one with toyjudge.train_judge(world=...) and save_judge, or give --judge")
    world = bundle_world(load_bundle(args.model))
    name = ("calibrate_thresholds" + ("" if args.preset == "lean" else f"_{args.preset}") if args.model == "toy"
            else f"calibrate_thresholds_{world}")
    out = Path(args.out or RESULTS / f"{name}.json")
    records = out.with_name(out.stem + "_runs.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    scenes = {seed: calibration_scenes(args.scenes, world, seed, args.distractor, args.ordinary) for seed in seeds}
    done = {}
    if records.exists():
        for line in records.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: that run is redone
            done[(*_key(r), r["beta_bg"])] = r
    shared = dict(model=args.model, judge=judge, scenes=args.scenes, distractor=args.distractor,
                  ordinary=args.ordinary, preset=args.preset, dpl_set=args.dpl_set, self_replace=args.self_replace)
    keys = [(seed, i, b) for seed in seeds for i, _ in scenes[seed] for b in [None, *betas]]
    jobs = [(*key, shared) for key in keys if key not in done]
    with ProcessPoolExecutor(args.workers) as pool, records.open("a") as f:
        if records.stat().st_size and not records.read_text().endswith("\n"):
            f.write("\n")
        for r in pool.map(run, jobs):
            done[(r["seed"], r["scene"], r["beta_bg"])] = r
            f.write(json.dumps(r) + "\n"); f.flush()
            print(f"seed {r['seed']} scene {r['scene']:2d} "
                  f"{'NTI' if r['beta_bg'] is None else 'beta_bg ' + str(r['beta_bg'])}: "
                  f"IoU@0.3 {r['iou']:.3f}, {r['unet_evals']} evals, {r['token_updates']} updates, "
                  f"{r['seconds']:.0f} s", flush=True)
    rows = [done[key] for key in keys]
    table, chosen = choose(rows, betas, args.rule)
    all_scenes = [s for seed in seeds for _, s in scenes[seed]]
    nti_rows = [r for r in rows if r["beta_bg"] is None]
    nti_by_scene = {_key(r): r for r in nti_rows}
    result = {
        "benchmark": "calibrate_thresholds", "model": args.model, "world": world, "preset": args.preset,
        "dpl_set": sorted(args.dpl_set), "base_beta_bg": base.losses.beta_bg, "steps": 50,
        "self_replace_steps": args.self_replace, "calibration_seeds": seeds, "scenes": len(all_scenes),
        "distractor_scenes": sum(is_distractor(s) for s in all_scenes),
        "scenes_checksum": scenes_checksum(all_scenes),
        "iou_nti": float(np.mean([r["iou"] for r in nti_rows])),
        "nti": summary(nti_rows, nti_by_scene),
        "betas": table, "reference_beta_bg": 0.7, "beta_bg": chosen,
        "rule": ("largest beta_bg whose mean IoU@0.3 gain over NTI is within 0.01 of the best" if args.rule == "iou" else
                 "success at least NTI's - 0.05, then the most look-alikes kept, then background PSNR, then the largest")
                + f", worst case under {LEAN_TARGET_MAX} UNet evaluations",
        "per_seed": {str(seed): {str(b): summary([r for r in rows if _key(r)[0] == seed and r["beta_bg"] == b],
                                                 nti_by_scene) for b in [None, *betas]}
                     for seed in seeds} if len(seeds) > 1 else None,
        "runs": rows, "seconds_inversions": sum(r["seconds"] for r in rows), "workers": args.workers,
        "machine": machine(), "torch": torch.__version__,
        "dpl_nb": dpl_nb.__version__,
    }
    write_result(result, out)
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "per_seed")}, indent=1))


if __name__ == "__main__":
    main()
