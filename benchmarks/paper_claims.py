"""The paper's claims re-measured on ToyMO-Set (chapter 11): IoU curves, loss ablation, edits, cost.

For the first N ToyMO-Set scenes (all 100 by default) at 50 steps: IoU sweeps of DDIM, NTI, DPL-paper, DPL-lean
and DPL-toy (the toy model's preset, chapter 8), the seven-row loss ablation of DPL-lean, NTI + P2P vs DPL + P2P word
swaps (edit success, distractor preservation, background PSNR / SSIM) of two kinds, a swap of the first object's noun
(the paper's kind of edit, what the claims are judged on; success: the new noun in the object's own colour) and a
recolouring, and the cost of each method. The first toy model's run (toy world v1, judged on the recolouring) is in
benchmarks/results/v1/. Each finished scene is appended to
benchmarks/results/paper_claims_scenes.jsonl, so a crash loses at most the scenes in flight and running the command
again continues where it stopped; the summary goes to benchmarks/results/paper_claims.json (atomically) with a figure
of the IoU curves. Long: about 3-4 minutes of one CPU core per scene (more where DPL acts); use --workers.
Records made before the recolouring (no "edits_shape") get their edits made again from fresh NTI and DPL-lean
inversions (redo_edits, under a minute per scene); their IoU, ablation and cost parts are kept. Each record carries
a fingerprint of the settings each method ran with ("settings"); a method whose settings differ from the current
ones (a record without "settings": its dpl-toy) is made again, alone (remake_methods: its IoU, cost and edits, and
the ablation if it is dpl-lean), and the record names it under "remade"; the rest of the record is kept.

    python benchmarks/paper_claims.py [--scenes 100] [--steps 50] [--workers N] [--no-ablation]

--first-scene K records only scenes K..N-1, so that two machines can share a run (each writing its own --records
file; concatenate them afterwards). Each record names the machine and torch that made it.
"""
import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm.auto import tqdm

import dpl_nb
from _results import machine, write_result
from dpl_nb.experiments import (METHODS, append_record, claims_job, claims_jobs, compact_records, method_settings,
                                read_records, summarise)
from dpl_nb.models import load_bundle
from dpl_nb.toymoset import toymo_set
from dpl_nb.toyjudge import load_judge
from dpl_nb.toymodel import bundle_world

RESULTS = Path(__file__).parent / "results"
_STATE = {}
_MACHINE = machine()


def _record(job) -> dict:
    "One job of claims_jobs (a new scene, an old record's stale methods or edits made again) in a worker process"
    (index, old, methods), steps, ablation = job
    torch.set_num_threads(1)
    if not _STATE:
        _STATE.update(bundle=load_bundle("toy"), judge=load_judge(), scenes=toymo_set())
    bundle, scene, judge = _STATE["bundle"], _STATE["scenes"][index], _STATE["judge"]
    record = claims_job(bundle, (index, old, methods), scene, judge, steps, ablation)
    if old is None:
        return dict(record, machine=_MACHINE, torch=torch.__version__)
    made_by = {}
    if methods:
        made_by.update(remade_machine=_MACHINE, remade_torch=torch.__version__)
    if "edits_shape" not in old:
        made_by.update(edits_machine=_MACHINE, edits_torch=torch.__version__)
    return dict(record, **made_by)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100, help="the first N ToyMO-Set scenes")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--first-scene", type=int, default=0, help="record only scenes from this index on")
    parser.add_argument("--workers", type=int, default=1, help="processes, each running whole scenes")
    parser.add_argument("--no-ablation", action="store_true", help="skip the loss ablation")
    parser.add_argument("--records", default=str(RESULTS / "paper_claims_scenes.jsonl"))
    parser.add_argument("--out", default=str(RESULTS / "paper_claims.json"))
    args = parser.parse_args()
    records_path = Path(args.records)
    records_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_records(records_path)
    stale = {r["steps"] for r in done.values()} - {args.steps}
    if stale:
        raise SystemExit(f"{records_path} holds records made with {sorted(stale)} steps; move it away or use --steps")
    jobs = claims_jobs(done, range(args.first_scene, args.scenes))
    todo = [(job, args.steps, not args.no_ablation) for job in jobs]
    remakes = {m: sum(old is not None and m in methods for _, old, methods in jobs) for m in METHODS}
    which = ", ".join(f"{m} in {n}" for m, n in remakes.items() if n)
    print(f"{sum(old is None for _, old, _ in jobs)} scenes to record, "
          f"{sum(old is not None and 'edits_shape' not in old for _, old, _ in jobs)} to re-edit, "
          f"{sum(old is not None and bool(methods) for _, old, methods in jobs)} with stale methods to remake"
          + (f" ({which})" if which else ""))
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="scenes")
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            for future in as_completed([pool.submit(_record, job) for job in todo]):
                record = future.result()
                append_record(records_path, record); done[record["scene"]] = record; bar.update()
    else:
        for job in todo:
            record = _record(job)
            append_record(records_path, record); done[record["scene"]] = record; bar.update()
    bar.close()
    dropped = compact_records(records_path)  # one line per scene: the latest record
    if dropped:
        print(f"{records_path.name}: {dropped} superseded or half-written lines dropped")
    summary = summarise({k: v for k, v in done.items() if k < args.scenes})
    summary.update(model="toy", world=bundle_world(load_bundle("toy")), records=str(records_path.name), seconds_this_run=time.perf_counter() - start,
                   workers=args.workers, machine=_MACHINE,
                   edits_redone_scenes=sum("edits_redone" in r for k, r in done.items() if k < args.scenes),
                   edits_redone_same_unet_evals=sum(r.get("edits_redone", {}).get("same_unet_evals", False)
                                                    for k, r in done.items() if k < args.scenes),
                   remade_scenes=sum(bool(r.get("remade")) for k, r in done.items() if k < args.scenes),
                   remade_methods={m: sum(m in r.get("remade", ()) for k, r in done.items() if k < args.scenes)
                                   for m in METHODS},
                   machines=sorted({r.get("machine", "unrecorded") for k, r in done.items() if k < args.scenes}),
                   settings=method_settings(), torch=torch.__version__, dpl_nb=dpl_nb.__version__)
    out = write_result(summary, args.out)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, curve in summary["iou_curves"].items():
        ax.plot(summary["thresholds"], curve, label=method)
    ax.set(xlabel="threshold", ylabel="mean IoU", title=f"ToyMO-Set, {summary['scenes']} scenes")
    ax.legend(); fig.tight_layout()
    figure = Path(args.out).with_suffix(".png")
    tmp = figure.with_name(figure.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120); os.replace(tmp, figure)
    for claim, holds in summary["claims"].items():
        print(f"{'holds' if holds else 'fails'}: {claim}")
    print(f"-> {out}, {figure}")


if __name__ == "__main__":
    main()
