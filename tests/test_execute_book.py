"The book's execution (tools/execute_book.py) runs the cells nbdev_test runs: it finds a cell either would treat apart"
import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("execute_book",
                                              Path(__file__).parents[1] / "tools" / "execute_book.py")
execute_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(execute_book)


def _notebook(tmp_path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": "code", "metadata": {"tags": tags} if tags else {}, "source": source, "outputs": []}
        for source, tags in cells] + [{"cell_type": "markdown", "metadata": {}, "source": "#| notest"}]}))
    return path


def test_matching_cells_pass(tmp_path):
    page = _notebook(tmp_path, [("x = 1", []), ("#| notest\nslow()", ["skip-execution"]),
                                ("#| export\n#|notest\nmain()", ["skip-execution", "hide-input"])])
    assert execute_book.skip_mismatches([page]) == []


def test_each_mismatch_is_named(tmp_path):
    page = _notebook(tmp_path, [("x = 1", ["skip-execution"]), ("#| notest\nslow()", ["hide-input"]),
                                ("# a comment about #| notest", [])])
    found = execute_book.skip_mismatches([page])
    assert len(found) == 2
    assert found[0].startswith("page.ipynb cell 0: tagged skip-execution but run by nbdev_test")
    assert found[1].startswith("page.ipynb cell 1: skipped by nbdev_test but executed by the book")


def test_the_book_and_the_notebook_tests_agree():
    pages = execute_book.toc_pages()
    assert set(execute_book.ROOT.glob("nbs/*.ipynb")) <= set(pages)  # every notebook is a page of the book
    assert execute_book.skip_mismatches(pages) == []
