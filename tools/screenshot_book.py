"""Headless Chromium screenshots of every page of the built book, and what a reader sees at 1280 px.

Opens each page of `_toc.yml` from the HTML that `tools/build_book.sh` wrote, in a 1280-px-wide window, waits for
MathJax to typeset, and measures in the rendered page (not in the HTML source, as `tools/check_book.py` does):
- `page_scrolls_sideways`: the page itself is wider than the window;
- `code_blocks_scrolling`: code and output blocks whose text is wider than the block (the reader scrolls it sideways);
- `raw_tex`: TeX left in the visible text after typesetting (`$$`, `\\text{`, `\\frac{`, ...), code blocks excluded;
- `uncaptioned_images`: images in the article that no figure caption belongs to (the images an interactive widget
  draws, such as chapter 3's map explorer, are controls, not figures: they are counted as `widget_images`);
- `math_errors`: formulas MathJax could not typeset.
Each page's screenshot (the whole page, stitched from 1280 x 4000 tiles, scaled by --scale) goes to --out as JPEG,
with `report.json` beside it. Exit status 1 when any page has a problem.

Needs playwright (`pip install playwright`, its browsers are not needed) and a Chromium (Debian: `apt-get install
chromium`); neither is a dependency of dpl_nb, and CI does not run this script.

    python tools/screenshot_book.py [_build/html] [--out _build/screens] [--scale 0.5] [--chromium /usr/bin/chromium]
"""
import argparse
import io
import json
import sys
from pathlib import Path

from PIL import Image

from execute_book import toc_pages  # (tools/ is this script's folder)

ROOT = Path(__file__).resolve().parents[1]
WIDTH, TILE = 1280, 4000

MEASURE = r"""() => {
  const article = document.querySelector('article') || document.body;
  const codeBlocks = [...article.querySelectorAll('pre')].filter(p => p.scrollWidth > p.clientWidth + 1);
  const rawTex = /\$\$|\\text\{|\\arg\b|\\mathcal|\\frac\{|\\begin\{/;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const tex = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest('pre, code, script, style, mjx-container, .MathJax')) continue;
    const m = node.textContent.match(rawTex);
    if (m) tex.push(node.textContent.trim().slice(0, 120));
  }
  const images = [...article.querySelectorAll('img')];
  const widget = img => img.closest('.jupyter-widgets, .widget-subarea') !== null;
  const uncaptioned = images.filter(img => !widget(img)).filter(img => {
    const fig = img.closest('figure');
    return !(fig && fig.querySelector('figcaption'));
  }).map(img => img.getAttribute('src').slice(0, 80));
  return {
    height: document.documentElement.scrollHeight,
    page_scrolls_sideways: document.documentElement.scrollWidth > window.innerWidth,
    code_blocks: article.querySelectorAll('pre').length,
    code_blocks_scrolling: codeBlocks.length,
    code_blocks_scrolling_first: codeBlocks.slice(0, 3).map(p => p.textContent.split('\n')
      .reduce((a, b) => a.length >= b.length ? a : b, '').slice(0, 120)),
    raw_tex: tex,
    uncaptioned_images: uncaptioned,
    widget_images: images.filter(widget).length,
    figures: article.querySelectorAll('figure').length,
    math_errors: article.querySelectorAll('mjx-merror').length,
    formulas: article.querySelectorAll('mjx-container').length,
  };
}"""


def pages(html: Path) -> list[tuple[str, Path]]:
    "The book's pages in the order of `_toc.yml`: (name, html file)"
    return [(page.stem, html / page.relative_to(ROOT).with_suffix(".html")) for page in toc_pages()]


def shoot(page, height: int, scale: float) -> Image.Image:
    "The whole page, stitched from tiles (one full-page capture of a very tall page comes back blank)"
    whole = Image.new("RGB", (WIDTH, height), "white")
    for top in range(0, height, TILE):
        clip = dict(x=0, y=top, width=WIDTH, height=min(TILE, height - top))
        tile = Image.open(io.BytesIO(page.screenshot(full_page=True, clip=clip, type="png")))
        whole.paste(tile.convert("RGB"), (0, top))
    return whole.resize((round(WIDTH * scale), round(height * scale)), Image.LANCZOS)


def problems(measured: dict) -> list[str]:
    "What a reader of this page trips over"
    found = []
    if measured["page_scrolls_sideways"]:
        found.append("the page scrolls sideways")
    if measured["code_blocks_scrolling"]:
        found.append(f"{measured['code_blocks_scrolling']} code blocks scroll sideways")
    if measured["raw_tex"]:
        found.append(f"raw TeX: {measured['raw_tex'][0]!r}")
    if measured["uncaptioned_images"]:
        found.append(f"{len(measured['uncaptioned_images'])} images without a caption")
    if measured["math_errors"]:
        found.append(f"{measured['math_errors']} formulas MathJax could not typeset")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html", nargs="?", default=str(ROOT / "_build" / "html"))
    parser.add_argument("--out", default=str(ROOT / "_build" / "screens"))
    parser.add_argument("--scale", type=float, default=0.5, help="size of the saved screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("this script needs playwright: pip install playwright (and a Chromium: apt-get install chromium)")
    html, out = Path(args.html), Path(args.out)
    if not (html / "index.html").exists():
        sys.exit(f"no built book in {html}: run bash tools/build_book.sh first")
    if not Path(args.chromium).exists():
        sys.exit(f"no Chromium at {args.chromium}: apt-get install chromium, or pass --chromium PATH")
    out.mkdir(parents=True, exist_ok=True)
    report, failed = {}, 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=dict(width=WIDTH, height=900))
        for name, path in pages(html):
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
            page.wait_for_timeout(300)
            measured = page.evaluate(MEASURE)
            image = shoot(page, measured["height"], args.scale)
            tmp = out / f".{name}.jpg"
            image.save(tmp, quality=70)
            tmp.replace(out / f"{name}.jpg")  # nothing half-written under its final name
            measured["problems"] = problems(measured)
            failed += bool(measured["problems"])
            report[name] = measured
            print(f"{name:22s} {measured['height']:6d} px  {measured['figures']:3d} figures  "
                  f"{measured['formulas']:4d} formulas  " + ("; ".join(measured["problems"]) or "ok"))
        browser.close()
    summary = dict(width=WIDTH, pages=len(report), pages_with_problems=failed, pages_report=report)
    tmp = out / ".report.json"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out / "report.json")
    print(f"{len(report)} pages, {failed} with problems; screenshots and report.json in {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
