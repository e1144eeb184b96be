"""The run in three parts (run/plan.py, run/execute.py, run/report.py): one way to finish, whoever finishes (a
plain run, `pytest-editeval merge`, `pytest-editeval compare`), and a run core that pytest does not enter."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_editeval

from .conftest import output_of

RUN_PACKAGE = Path(pytest_editeval.__file__).parent / "run"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pytest_editeval.cli", *map(str, args)], capture_output=True,
                          text=True)


def _title(result) -> str:
    """The editeval section's title, as pytest printed it (`==== title ====`)."""
    line = next(line for line in result.outlines if " editeval: " in line and line.startswith("="))
    return line.strip("= ")


@pytest.mark.slow  # three pytest runs and a merge
def test_a_merge_finishes_as_the_plain_run_of_the_same_rows(run, tmp_path):
    whole = run(f"--editeval-json={tmp_path / 'whole.json'}", "--editeval-threshold=overall>=0")
    assert whole.ret == 0, output_of(whole)
    shards = [tmp_path / f"s{k}.json" for k in (1, 2)]
    for k, path in enumerate(shards, 1):
        assert run(f"--editeval-shard={k}/2", f"--editeval-json={path}").ret == 0
    merged = _cli("merge", *shards, "--threshold=overall>=0", f"--json={tmp_path / 'merged.json'}")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    # the same title: the judge's label (model and backend), as the plain run names it
    assert merged.stdout.splitlines()[0] == _title(whole)
    assert "judge gpt-4.1 (openai)" in _title(whole)
    one, combined = (json.loads((tmp_path / f).read_text()) for f in ("whole.json", "merged.json"))
    # the same fields, down to the meta and the judge; the merge adds only how many shards it merged
    assert set(combined) == set(one)
    assert set(combined["meta"]) - {"merged_shards"} == set(one["meta"])
    assert set(combined["judge"]) == set(one["judge"])
    for key in ("benchmark_info", "aggregates", "gate", "samples", "missing", "complete", "model", "protocol"):
        assert combined[key] == one[key], key
    # the same summary, but for what only a process counts (its judge requests) and the files it wrote
    same = ("+", "|", "scored", "editeval gate", "PASS", "FAIL")
    assert [line for line in merged.stdout.splitlines() if line.startswith(same)] == \
        [line for line in whole.outlines if line.startswith(same)]


@pytest.mark.slow  # two pytest runs
def test_compare_titles_the_new_run_as_its_own_summary_did(run, pytester, tmp_path):
    first = run("--editeval-save=first", "--editeval-subsets=color_alter")
    second = run("--editeval-save=second", "--editeval-subsets=color_alter", "--editeval-judge-recipe=editscore",
                 cache_dir=tmp_path / "other")
    assert first.ret == 0 and second.ret == 0, output_of(second)
    done = _cli("compare", "first", "second", f"--rootdir={pytester.path}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == _title(second)
    assert "recipe editscore" in _title(second)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _reads_config_option(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.Attribute) and node.attr == "option" and isinstance(node.value, ast.Name)
               and node.value.id == "config" for node in ast.walk(tree))


def test_the_run_core_neither_imports_pytest_nor_reads_its_config():
    modules = sorted(RUN_PACKAGE.glob("*.py"))
    assert {m.stem for m in modules} >= {"__init__", "context", "plan", "execute", "report"}
    for module in modules:
        assert not {"pytest", "_pytest", "pluggy"} & _imports(module), module.name
        assert not _reads_config_option(module), module.name


def test_the_run_core_imports_with_pytest_blocked():
    """Importing every module under run/ (and what they import) never imports pytest."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('pytest', '_pytest', 'pluggy'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import pytest_editeval.run, pytest_editeval.run.plan, pytest_editeval.run.execute, "
            "pytest_editeval.run.report, pytest_editeval.run.context\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
