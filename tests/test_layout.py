"""The tree is the pipeline: `qa/` holds one package per stage and api/errors/__main__; no import
runs from a stage back up to a later one or in a circle; the README's "how it works" table names
every module; tests are grouped by stage; eval/ and training/ stay outside the installed package."""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "qa"
TOP = {"__init__.py", "__main__.py", "api.py", "errors.py"}
STAGES = {  # each stage and the stages it may import (qa.errors is open to all)
    "corpus": set(),
    "search": {"corpus"},
    "index": {"corpus", "search"},
    "backends": {"corpus", "search", "index"},
    "reading": {"corpus", "search"},
    "interface": {"corpus", "search", "index", "backends", "reading", "api"},
    "api": {"corpus", "search", "index", "backends", "reading"},
    "__main__": {"interface"},
    "errors": set(),
}


def modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name, parsed."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def imports(tree: ast.Module) -> set[str]:
    """The qa modules a module imports, wherever in it (a function's own imports count too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qa":
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "qa"}
    return names


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "qa"


def test_qa_holds_the_stage_packages_and_api_errors_main_only():
    entries = {path.name for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    packages = {name for name in entries if (PACKAGE / name).is_dir()}
    assert entries - packages == TOP
    assert packages == {name for name in STAGES if (PACKAGE / name).is_dir()}
    assert len(entries) <= 11
    for package in packages:
        docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8")))
        assert docstring, f"qa/{package}/__init__.py says what the stage takes and gives"


def test_no_import_runs_back_up_a_stage_and_none_goes_in_a_circle():
    parsed = modules()
    graph = {name: {i for i in imports(tree) if i in parsed and i != name} for name, tree in parsed.items()}
    upward = sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                    if stage(target) not in {stage(name), "errors", "qa"} | STAGES[stage(name)])
    assert upward == []
    done, on_path = set(), []

    def visit(name: str) -> None:  # depth first: a module met again on the current path closes a circle
        assert name not in on_path, "circle: " + " -> ".join(on_path[on_path.index(name):] + [name])
        if name in done:
            return
        on_path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_how_it_works_table_names_every_module_and_only_those():
    section = README.split("## The two commands")[0]
    named = set()
    for line in section.splitlines():
        package = re.match(r"\| \w+ \| `(qa/[a-z_/]+/)`:", line)
        if package:
            cell = line.split("|")[2]
            for folder, inner in re.findall(r"`([a-z_]+/)` \(([^)]*)\)", cell):  # a package within the stage
                named |= {package.group(1) + folder + m for m in re.findall(r"`([a-z0-9_]+\.py)`", inner)}
            cell = re.sub(r"`[a-z_]+/` \([^)]*\)", "", cell)
            named |= {package.group(1) + m for m in re.findall(r"`([a-z0-9_]+\.(?:py|json|safetensors))`", cell)}
    named |= set(re.findall(r"`(qa/[a-z_]+\.py)`", section))
    present = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*") if p.suffix in (".py", ".json", ".safetensors")
               and p.name != "__init__.py" and "__pycache__" not in p.parts}
    assert present - named == set(), "modules the README does not describe"
    assert named - present == set(), "modules the README describes that do not exist"


def test_tests_are_grouped_by_stage():
    folders = {path.name for path in (ROOT / "tests").iterdir() if path.is_dir() and path.name in STAGES}
    assert folders == {name for name in STAGES if (PACKAGE / name).is_dir()}
    for folder in folders:
        assert list((ROOT / "tests" / folder).glob("test_*.py")), f"tests/{folder} holds its stage's tests"


def test_the_package_imports_neither_eval_nor_training():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) (eval|training)\b", text, re.M), path.name


MODULE_LINES = 300  # issue 23: a module a newcomer reads in one sitting does one job


def test_no_module_of_the_package_eval_or_training_is_over_the_line_limit():
    sources = [p for folder in ("qa", "eval", "training") for p in (ROOT / folder).rglob("*.py")]
    too_long = {str(p.relative_to(ROOT)): n for p in sources
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}
    assert sources and too_long == {}


def test_eval_readme_says_how_and_what_in_under_1500_words():
    """History goes to docs/experiments.md, one line per experiment; eval/README.md stays readable."""
    assert len((ROOT / "eval" / "README.md").read_text(encoding="utf-8").split()) < 1500
