"""Execute every page of the book into the jupyter-cache that `jupyter-book build` reads, one page per CPU core at a time.

`_config.yml` sets `execute_notebooks: cache`, so the build takes each page's outputs from `_build/.jupyter_cache`.
`tools/build_book.sh` empties the cache, then runs this script with one torch thread per process: two kernels with
one thread each finish the book in about half the time of one kernel with two. A page whose execution fails is not
cached; the build then executes it again itself and stops on its error.

    OMP_NUM_THREADS=1 python tools/execute_book.py   (one process per CPU core)
"""
import argparse
import logging
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell, as in _config.yml")
    args = parser.parse_args()
    from jupyter_cache import get_cache  # (here, so that toc_pages can be imported without jupyter-cache)
    from jupyter_cache.executors import load_executor
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = get_cache(args.cache)
    for page in toc_pages():
        cache.add_nb_to_project(str(page))
    executor = load_executor("local-parallel", cache, logger=logging.getLogger("execute_book"))
    result = executor.run_and_cache(timeout=args.timeout)
    print(f"executed {len(result.succeeded)} pages; failed: {len(result.excepted) + len(result.errored)} "
          f"{sorted(Path(p).name for p in result.excepted + result.errored)}")


if __name__ == "__main__":
    main()
