"""The README's "how it works" table is the tree: every module of the package is named there, and
every module it names exists; eval/ and training/ stay outside the installed package."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_module_is_in_the_how_it_works_section_and_every_named_one_exists():
    section = README.split("## The two commands")[0]
    named = set(re.findall(r"`(qa/[a-z0-9_]+\.py)`", section))
    present = {f"qa/{path.name}" for path in (ROOT / "qa").glob("*.py") if path.name != "__init__.py"}
    assert present - named == set(), "modules the README does not describe"
    assert named - present == set(), "modules the README describes that do not exist"


def test_the_package_imports_neither_eval_nor_training():
    for path in (ROOT / "qa").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) (eval|training)\b", text, re.M), path.name


MODULE_LINES = 300  # issue 23: a module a newcomer reads in one sitting does one job


def test_no_module_of_the_package_eval_or_training_is_over_the_line_limit():
    sources = [p for folder in ("qa", "eval", "training") for p in (ROOT / folder).glob("*.py")]
    too_long = {str(p.relative_to(ROOT)): n for p in sources
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}
    assert sources and too_long == {}
