"""Execute every page of the book into the jupyter-cache that `jupyter-book build` reads, one page per CPU core at a time.

`_config.yml` sets `execute_notebooks: cache`, so the build takes each page's outputs from `_build/.jupyter_cache`.
`tools/build_book.sh` empties the cache, then runs this script with one torch thread per process: two kernels with
one thread each finish the book about 1.4 times faster than one kernel with two (measured on 2 cores). A page whose execution fails is not
cached, and this script prints its traceback and exits 1.

This execution is also the notebook tests of CI: it runs exactly the cells that `nbdev_test` runs, since every cell
that `nbdev_test` skips (a `#| notest` or other `tst_flags` flag of settings.ini) carries the book's `skip-execution`
tag and no other cell does, which this script checks before executing anything.

    OMP_NUM_THREADS=1 python tools/execute_book.py   (one process per CPU core)
"""
import argparse
import configparser
import json
import logging
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_pages() -> list[Path]:
    "The notebooks of `_toc.yml`, in its order"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    def walk(entries):
        for entry in entries:
            files.append(entry["file"])
            walk(entry.get("sections", []))
    for part in toc["parts"]:
        walk(part["chapters"])
    return [ROOT / f"{f}.ipynb" for f in files]


def skip_mismatches(pages: list[Path]) -> list[str]:
    "Cells that `nbdev_test` and the book would treat differently: a test flag without `skip-execution`, or the reverse"
    settings = configparser.ConfigParser()
    settings.read(ROOT / "settings.ini")
    flags = settings["DEFAULT"].get("tst_flags", "").split()
    flagged = re.compile(rf"^#\|\s*({'|'.join(map(re.escape, flags))})\s*$", re.M) if flags else None
    found = []
    for page in pages:
        for i, cell in enumerate(json.loads(page.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            tested = not (flagged and flagged.search("".join(cell["source"])))
            executed = "skip-execution" not in cell["metadata"].get("tags", [])
            if tested != executed:
                found.append(f"{page.name} cell {i}: "
                             + ("skipped by nbdev_test but executed by the book; tag it skip-execution" if executed
                                else "tagged skip-execution but run by nbdev_test; add `#| notest` or drop the tag"))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell, as in _config.yml")
    args = parser.parse_args()
    from jupyter_cache import get_cache  # (here, so that toc_pages can be imported without jupyter-cache)
    from jupyter_cache.executors import load_executor
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pages = toc_pages()
    if missing := sorted(set((ROOT / "nbs").glob("*.ipynb")) - set(pages)):
        sys.exit(f"Notebooks that nbdev_test runs but _toc.yml lacks: {[p.name for p in missing]}")
    if mismatches := skip_mismatches(pages):
        sys.exit("The book and the notebook tests must run the same cells:\n  " + "\n  ".join(mismatches))
    cache = get_cache(args.cache)
    for page in pages:
        cache.add_nb_to_project(str(page))
    executor = load_executor("local-parallel", cache, logger=logging.getLogger("execute_book"))
    result = executor.run_and_cache(timeout=args.timeout)
    failed = sorted(result.excepted + result.errored)
    for uri in failed:
        print(f"\n== {Path(uri).name} failed:\n{cache.get_project_record(uri).traceback}", file=sys.stderr)
    print(f"executed {len(result.succeeded)} pages; failed: {len(failed)} {[Path(p).name for p in failed]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
