"The reader's check (tools/check_book.py) finds each kind of problem in a page, and passes a clean one"
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("check_book", Path(__file__).parents[1] / "tools" / "check_book.py")
check_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_book)

CLEAN = """<html><body><article class="bd-article">
<p>Inline math <span class="math notranslate nohighlight">\\(\\mathcal{L}_{at}\\)</span> renders.</p>
<div class="math notranslate nohighlight">\\[\\frac{a}{b}\\]</div>
<figure class="align-default"><img src="a.png"/><figcaption><p>Figure 1: a map.</p></figcaption></figure>
<div class="cell_input"><pre>x = 1  # a short line</pre></div>
<div class="cell_output"><div class="output stream"><pre>step 3 of 10</pre></div></div>
<p>Code in prose: <code>$$</code> is fine.</p>
</article></body></html>"""


def _page(html: str, tmp_path: Path):
    path = tmp_path / "page.html"
    path.write_text(html)
    return check_book.check_page(path, width=100)


def test_clean_page_passes(tmp_path):
    page = _page(CLEAN, tmp_path)
    assert (page.raw_tex, page.uncaptioned, page.wide, page.progress, page.warnings) == ([], [], [], [], [])


@pytest.mark.parametrize("bad, field", [
    ("<p>the recurrence $$F_{i,j} = \\max(...)$$ in a paragraph</p>", "raw_tex"),
    ("<p>where \\text{cost} is</p>", "raw_tex"),
    ('<div class="cell_output"><img src="b.png"/></div>', "uncaptioned"),
    ('<figure><img src="c.png"/></figure>', "uncaptioned"),
    ('<div class="cell_input"><pre>' + "y" * 101 + "</pre></div>", "wide"),
    ('<div class="cell_output"><pre> 40%|####      | 4/10 [00:01&lt;00:02, 3.1it/s]</pre></div>', "progress"),
    ('<div class="cell_output"><div class="output stderr"><pre>FutureWarning: x</pre></div></div>', "warnings"),
])
def test_each_problem_is_found(tmp_path, bad, field):
    page = _page(CLEAN.replace("</article>", bad + "</article>"), tmp_path)
    assert len(getattr(page, field)) == 1
    others = {"raw_tex", "uncaptioned", "wide", "progress", "warnings"} - {field}
    assert all(getattr(page, f) == [] for f in others)


def test_progress_widget_is_found(tmp_path):
    state = '<script type="application/vnd.jupyter.widget-state+json">{"_model_name": "FloatProgressModel"}</script>'
    assert len(_page(CLEAN + state, tmp_path).progress) == 1


def test_fail_on_names_the_kinds_that_fail(tmp_path):
    import subprocess
    import sys
    (tmp_path / "nbs").mkdir()
    wide = '<div class="cell_input"><pre>' + "y" * 101 + "</pre></div>"
    (tmp_path / "nbs" / "page.html").write_text(CLEAN.replace("</article>", wide + "</article>"))
    run = lambda *extra: subprocess.run([sys.executable, str(Path(__file__).parents[1] / "tools" / "check_book.py"),
                                         str(tmp_path), "--summary", *extra], capture_output=True, text=True)
    assert run().returncode == 1                                    # by default every kind fails
    done = run("--fail-on", "tex,progress,stderr")
    assert done.returncode == 0 and "1 lines over 100 characters" in done.stdout   # reported, not failing
    assert run("--fail-on", "width").returncode == 1
    assert run("--fail-on", "colour").returncode == 2 and "unknown kind" in run("--fail-on", "colour").stderr
