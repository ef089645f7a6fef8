"""Fast DPL: cost and quality of DPL on cheaper inversions, beside the inversions alone, on ToyMO-Set.

On the ToyMO-Set scenes of `dpl_vs_nti.py` (its first 10 look-alike and first 10 ordinary scenes), at 50 steps and
guidance 7.5, each scene is inverted by NTI, negative-prompt inversion (`npi`), Direct Inversion (`direct`) and DPL
with the presets `lean`, `toy` and `fast` (`dpl_lean`, `dpl_toy`, `dpl_fast`; `fast` is `lean` on NPI, with the
paper's constants), and each inversion is edited by `edit_leakage.py`'s `method_record` with that benchmark's settings:
P2P swaps the first object's braced noun, with a local blend on the swapped words. Per method: UNet evaluations per
image (full-evaluation equivalents: a token pass stopped early counts as its share; mean, median, worst; the
inversion only, not the edit), wall time, the mean noun IoU at 0.3 and the sweep's best (maps read while sampling
the reconstruction), the reconstruction's PSNR against the input (null where it is identical, as Direct
Inversion's can be; their count is `recon_identical`), and the edit's `success`, `distractor_kept` and background
PSNR. Writes benchmarks/results/dpl_cost.json (a `methods` dict keyed by those names); per-scene records go to
dpl_cost_scenes.jsonl beside it, and a rerun skips the scenes recorded.

    python benchmarks/dpl_cost.py [--model toy|FOLDER] [--judge FOLDER] [--scenes 20] [--steps 50] [--workers N]
"""
import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

import dpl_nb
from _results import machine, write_result
from _toymo import balanced_scenes, worker_state
from dpl_nb.experiments import append_record, compact_records, read_records
from dpl_nb.models import TOY_MODEL, load_bundle
from dpl_nb.toymodel import bundle_world
from dpl_nb.toymoset import toymo_set
from dpl_nb.toyworld import is_distractor
from edit_leakage import method_record as leakage_record

METHODS = {"nti": "nti", "npi": "npi", "direct": "direct", "dpl_lean": "lean", "dpl_toy": "toy",
           "dpl_fast": "fast"}  # column: inversion or DPL preset
METRICS = ("unet_evals", "seconds", "recon_psnr", "iou03", "iou_best", "success", "distractor_kept", "bg_psnr",
           "token_updates")


def method_record(bundle, judge, scene, method: str, steps: int) -> dict:
    "Invert `scene` with `method`, read its maps, reconstruct it and swap its first noun as edit_leakage.py does"
    torch.manual_seed(0)
    record = leakage_record(bundle, judge, scene, METHODS[method], steps, recon=True)
    return {key: record[key] for key in METRICS}


def _record(job) -> dict:
    "One scene's record, every method (model, judge and scenes loaded once per process)"
    index, args = job
    state = worker_state(args["model"], args["judge"])
    scene = state["scenes"][index]
    record = dict(scene=index, distractor=bool(is_distractor(scene)), prompt=scene.braced, steps=args["steps"],
                  machine=machine(), torch=torch.__version__)
    for method in METHODS:
        record[method] = method_record(state["bundle"], state["judge"], scene, method, args["steps"])
    return record


def summarise(records: list[dict]) -> dict:
    "Per method: evaluations (mean, median, max), seconds, IoUs, reconstruction PSNR and the edit's rates"
    out = {}
    for method in METHODS:
        rows = [r[method] for r in records]
        column = lambda key: [row[key] for row in rows if row[key] is not None]
        evals = column("unet_evals")
        out[method] = dict(evals_mean=statistics.fmean(evals), evals_median=statistics.median(evals),
                           evals_max=max(evals), seconds_mean=statistics.fmean(column("seconds")),
                           iou03=statistics.fmean(column("iou03")), iou_best=statistics.fmean(column("iou_best")),
                           recon_psnr=statistics.fmean(column("recon_psnr")) if column("recon_psnr") else None,
                           recon_identical=sum(row["recon_psnr"] is None for row in rows),
                           success=statistics.fmean(column("success")),
                           distractor_kept=statistics.fmean([r[method]["distractor_kept"] for r in records]),
                           bg_psnr=statistics.fmean(column("bg_psnr")) if column("bg_psnr") else None)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="toy", help="toy (the embedded model) or a toy model folder")
    parser.add_argument("--judge", default=None, help="judge folder (default: the model folder's judge/)")
    parser.add_argument("--scenes", type=int, default=20, help="ToyMO-Set scenes, half of them look-alikes")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="processes, each running whole scenes")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dpl_cost.json"))
    args = parser.parse_args()
    folder = TOY_MODEL if args.model == "toy" else Path(args.model)
    judge = args.judge or str(folder / "judge")
    out = Path(args.out)
    records_path = out.with_name(out.stem + "_scenes.jsonl")
    records_path.parent.mkdir(parents=True, exist_ok=True)
    world = bundle_world(load_bundle(args.model))
    chosen = balanced_scenes(args.scenes, toymo_set(world=world))
    done = read_records(records_path)
    if {r["steps"] for r in done.values()} - {args.steps}:
        raise SystemExit(f"{records_path} holds records of another step count; move it away or use --steps")
    job_args = dict(model=args.model, judge=judge, steps=args.steps)
    todo = [(i, job_args) for i, _ in chosen if i not in done]
    print(f"{world} world: {len(chosen)} scenes, {len(todo)} to run", flush=True)
    start = time.perf_counter()

    def keep(record):
        append_record(records_path, record); done[record["scene"]] = record
        print(f"scene {record['scene']}: " + ", ".join(f"{m} {record[m]['unet_evals']:.0f}" for m in METHODS), flush=True)
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            for future in as_completed([pool.submit(_record, job) for job in todo]):
                keep(future.result())
    else:
        for job in todo:
            keep(_record(job))
    compact_records(records_path)
    records = [done[i] for i, _ in chosen]
    result = {"benchmark": "dpl_cost", "model": args.model, "world": world, "steps": args.steps, "guidance_scale": 7.5,
              "scenes": len(records), "distractor_scenes": sum(r["distractor"] for r in records),
              "methods": summarise(records), "records": records_path.name, "workers": args.workers,
              "seconds_this_run": time.perf_counter() - start, "torch": torch.__version__,
              "dpl_nb": dpl_nb.__version__}
    print(f"{'method':9s} {'median':>7s} {'max':>7s} {'IoU@0.3':>8s} {'best':>6s} {'recon':>6s} {'swap':>5s} {'kept':>5s}")
    for method, row in result["methods"].items():
        recon = "exact" if row["recon_psnr"] is None else f"{row['recon_psnr']:.1f}"
        print(f"{method:9s} {row['evals_median']:7.0f} {row['evals_max']:7.0f} {row['iou03']:8.3f} "
              f"{row['iou_best']:6.3f} {recon:>6s} {row['success']:5.2f} {row['distractor_kept']:5.2f}")
    print(f"-> {write_result(result, out)}")


if __name__ == "__main__":
    main()
