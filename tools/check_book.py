"""The reader's check: what a reader of the built book would trip over, page by page.

Reads the HTML that `tools/build_book.sh` wrote and reports, for each chapter,
- raw TeX in the text (`$$`, `\\text{`, `\\arg`, `\\mathcal`, `\\frac` outside rendered math),
- figures without a caption (an image not inside a <figure> with a <figcaption>),
- code and output blocks wider than the page (lines over --width characters),
- progress bars in cell outputs (tqdm text or progress widgets),
- library warnings and other stderr output of the cells.

Exit status 1 when anything of the kinds --fail-on names is found (default: every kind), so CI can run it after
the build; the other kinds are reported only.

    python tools/check_book.py [_build/html] [--width 100] [--summary] [--fail-on tex,progress,stderr]
"""
import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

RAW_TEX = re.compile(r"\$\$|\\text\{|\\arg\b|\\mathcal|\\frac\{")
TQDM_TEXT = re.compile(r"\d+%\|.*\|.*(it/s|s/it)|\d+/\d+ \[\d\d:\d\d")
PROGRESS_WIDGET = re.compile(r'"_model_name":\s*"(Float|Int)ProgressModel"')
KINDS = ("tex", "captions", "width", "progress", "stderr")  # what --fail-on can name
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    "Walks one page, keeping the open elements, and collects what a reader would trip over"

    def __init__(self, width: int):
        super().__init__(convert_charrefs=True)
        self.width, self.stack = width, []  # stack of (tag, classes)
        self.raw_tex, self.uncaptioned, self.wide, self.progress, self.warnings = [], [], [], [], []
        self.figures = []  # [has_caption, image sources] of each open <figure>
        self.pre = None  # text of the <pre> being read, and whether it is an output

    def _inside(self, tag=None, cls=None) -> bool:
        return any((tag is None or t == tag) and (cls is None or cls in c) for t, c in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "figure":
            self.figures.append([False, []])
        elif tag == "figcaption" and self.figures:
            self.figures[-1][0] = True
        elif tag == "img" and self._inside(cls="bd-article") and not self._inside(cls="navbar-brand"):
            src = attrs.get("src", "?")
            (self.figures[-1][1].append(src) if self.figures else self.uncaptioned.append(src))
        elif tag == "pre" and self.pre is None:
            self.pre = ["", self._inside(cls="cell_output"), self._inside(cls="stderr")]
        if tag not in VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:  # tolerate unclosed elements: pop to the matching tag
            t, _ = self.stack.pop()
            if t == tag:
                break
        if tag == "figure" and self.figures:
            captioned, images = self.figures.pop()
            if not captioned:
                self.uncaptioned.extend(images)
        elif tag == "pre" and self.pre is not None and not self._inside("pre"):
            text, is_output, is_stderr = self.pre
            for line in text.splitlines():
                if len(line) > self.width:
                    self.wide.append(("output" if is_output else "code", line))
            if is_output and TQDM_TEXT.search(text):
                self.progress.append(TQDM_TEXT.search(text).group(0))
            if is_stderr and text.strip():
                self.warnings.append(text.strip().splitlines()[0])
            self.pre = None

    def handle_data(self, data):
        if self.pre is not None:
            self.pre[0] += data
            return
        if self._inside("script") or self._inside("style") or self._inside(cls="math") or self._inside("code"):
            return
        if self._inside(cls="bd-article") and RAW_TEX.search(data):
            self.raw_tex.append(data.strip()[:80])


def check_page(path: Path, width: int) -> Page:
    "Parse one HTML page of the book"
    html = path.read_text(encoding="utf-8")
    page = Page(width)
    page.feed(html)
    page.progress += [f"progress widget ({n})" for n in PROGRESS_WIDGET.findall(html)]
    return page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html", nargs="?", default="_build/html", help="the built book (jupyter-book's html folder)")
    parser.add_argument("--width", type=int, default=100, help="widest line a code or output block may have")
    parser.add_argument("--summary", action="store_true", help="counts only, no examples")
    parser.add_argument("--fail-on", default=",".join(KINDS), help=f"comma-separated kinds that fail the check: {', '.join(KINDS)}")
    args = parser.parse_args()
    fail_on = {k.strip() for k in args.fail_on.split(",") if k.strip()}
    if fail_on - set(KINDS):
        parser.error(f"--fail-on: unknown kind(s) {sorted(fail_on - set(KINDS))}; choose from {', '.join(KINDS)}")
    root = Path(args.html)
    pages = sorted(root.glob("nbs/*.html")) + sorted(root.glob("*.html"))
    pages = [p for p in pages if p.name not in ("search.html", "genindex.html")]
    if not pages:
        print(f"no HTML pages under {root}: build the book first (bash tools/build_book.sh)", file=sys.stderr)
        return 2
    problems = failing = 0
    for path in pages:
        page = check_page(path, args.width)
        kinds = {"tex": page.raw_tex, "captions": page.uncaptioned, "width": page.wide, "progress": page.progress,
                 "stderr": page.warnings}
        failing += sum(len(v) for k, v in kinds.items() if k in fail_on)
        names = {"tex": "raw TeX", "captions": "figures without caption", "width": f"lines over {args.width} characters",
                 "progress": "progress bars", "stderr": "stderr outputs"}
        found = {names[k]: v for k, v in kinds.items() if v}
        problems += sum(map(len, found.values()))
        status = "ok" if not found else "; ".join(f"{len(v)} {k}" for k, v in found.items())
        print(f"{path.relative_to(root)}: {status}")
        if not args.summary:
            for k, v in found.items():
                for example in v[:2]:
                    print(f"    {k}: {str(example)[:110]}")
    print(f"{len(pages)} pages, {problems} problems, {failing} of the kinds that fail the check ({', '.join(sorted(fail_on))})")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
