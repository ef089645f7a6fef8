"Chapter 8 teaches before it measures: its algorithm box, diagram and worked example come before any benchmark, in at most 1,500 words of prose before its Notes"
import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _cells(name: str) -> list[dict]:
    return json.loads((ROOT / "nbs" / name).read_text())["cells"]


def prose_words(markdown: str) -> int:
    "Words of a markdown cell, each formula (`$...$` or `$$...$$`) counted as one"
    return len(re.sub(r"\$\$.*?\$\$|\$[^$]*\$", "x", markdown, flags=re.S).split())


def test_prose_words_counts_a_formula_once():
    assert prose_words("The loss $\\mathcal{L} = a + b$ falls.\n\n$$x = \\frac{1}{2}$$\n\nDone.") == 6


def test_chapter_8_teaches_before_its_notes():
    cells = _cells("08_dpl.ipynb")
    text = ["".join(c["source"]) for c in cells]
    notes = next(i for i, s in enumerate(text) if cells[i]["cell_type"] == "markdown"
                 and re.search(r"^#+ Notes", s, re.M))
    words = sum(prose_words(s) for c, s in zip(cells[:notes], text) if c["cell_type"] == "markdown")
    assert words <= 1500, f"chapter 8 has {words} words of prose before its Notes"
    figures = [json.dumps(c["metadata"]) for c in cells]
    first = lambda pattern, where: next(i for i, s in enumerate(where) if re.search(pattern, s))
    benchmark = first(r"edit_leakage", text)
    assert first(r"Algorithm 1:", text) < benchmark  # the algorithm box
    assert first(r"fig-dpl-pipeline", figures) < benchmark  # the diagram
    assert first(r"fig-dpl-steps", figures) < first(r"fig-dpl-edit", figures) < benchmark  # the worked example


def test_notebook_code_fits_the_page():
    "Code lines of at most 100 characters: the book's code column shows 100 without scrolling sideways"
    wide = [f"{path.name} cell {i}: {len(line)} characters"
            for path in sorted((ROOT / "nbs").glob("*.ipynb"))
            for i, cell in enumerate(json.loads(path.read_text())["cells"]) if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > 100]
    assert not wide, "\n".join(wide)
