"""The generated reference pages (docs/gen_reference.py, run by MkDocs as a hook) hold every option, every
registered benchmark and its threshold names, every results-JSON field and every CLI command: they are built from
the code, so a new option or benchmark cannot be left out of the docs."""

import importlib.util
import re
from pathlib import Path

import pytest

from pytest_editeval import benchmarks
from pytest_editeval.options import table as options
from pytest_editeval.report import results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(generator):
    return generator.pages()


def _rows(page: str) -> dict[str, str]:
    """{option: its table row} of the options page."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(--editeval-[a-z0-9-]+)` \|.*$", page, re.M)}


def test_every_option_has_one_row_with_its_ini_twin_type_default_and_help(pages):
    rows = _rows(pages["reference/options.md"])
    assert sorted(rows) == sorted(f"--editeval-{opt.name}" for opt in options.all_options())
    for opt in options.all_options():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", rows[f"--editeval-{opt.name}"])[1:-1]]
        assert cells[1] == f"`{opt.ini}`"
        assert cells[2] and cells[3], opt.name  # what it takes, its default
        assert " ".join(opt.help.split()[:4]).replace("<", "&lt;").replace(">", "&gt;") in cells[4]
    assert "`editeval_junit_properties`" in pages["reference/options.md"]  # ini-only settings too


def test_options_are_grouped_and_none_is_left_over(generator, pages):
    page = pages["reference/options.md"]
    headings = re.findall(r"^## (.+)$", page, re.M)
    assert headings[:6] == ["Data", "Images or model", "Judge", "Gate", "Output", "Scale"]
    unplaced = [o.name for o in options.all_options() if options.group_of(o.name) == options.OTHER_GROUP]
    assert unplaced == [], f"place these options in GROUPS of pytest_editeval/options/table.py: {unplaced}"
    assert "## Other" not in page
    judge = page.split("## Judge")[1].split("## Gate")[0]
    assert "`--editeval-judge-backend`" in judge and "`--editeval-threshold`" not in judge


def test_defaults_are_read_from_the_help(pages):
    rows = _rows(pages["reference/options.md"])
    assert "| 120 |" in rows["--editeval-judge-timeout"]
    assert "| adaptive |" in rows["--editeval-judge-concurrency"]
    assert "| off |" in rows["--editeval-offline"]
    assert "repeatable" in rows["--editeval-threshold"]


def test_every_registered_benchmark_with_its_names(pages):
    names = benchmarks.known_names()
    assert {"gedit", "imgedit", "imgedit-uge", "kris"} <= set(names)
    bench_page, thresholds = pages["reference/benchmarks.md"], pages["reference/thresholds.md"]
    for name in names:
        bench = benchmarks.get(name)
        assert f"## {name}\n" in bench_page and f"### `{name}`" in thresholds
        section = thresholds.split(f"### `{name}`")[1].split("### ")[0]
        for metric in bench.metrics:
            assert f"`{metric.name}`" in section and all(f"`{a}`" in section for a in metric.aliases)
        for subset in bench.known_subsets():
            assert f"`{subset}`" in section
        for group in bench.groups:
            assert f"`{group.name}`" in section
        detail = bench_page.split(f"## {name}\n")[1].split("\n## ")[0]
        for protocol in bench.protocols:
            assert f"`{protocol.name}`" in detail
        for scope in bench.scopes:
            assert f"`{scope.name}`" in detail
    assert all(f"`{m}`" in thresholds for m in ("error_rate", "missing_rate", "judge_sd"))


def test_every_results_field_and_every_cli_command(generator, pages):
    page = pages["reference/results-json.md"]
    for model in (results.RunResults, results.JudgeInfo, results.SampleResult, results.ScopeResult,
                  results.GateInfo, results.ShardInfo):
        section = page.split(f"## {model.__name__}\n")[1].split("\n## ")[0]
        assert [f for f in model.model_fields if f"| `{f}` |" not in section] == []
    assert "| `endpoint` |" in page and "never credentials or query values" in page  # field comments come along
    commands = generator.cli_commands()
    assert {"compare", "merge", "agreement", "demo"} <= set(commands)
    assert all(f"## {c}\n" in pages["reference/cli.md"] for c in commands)
    assert "usage: pytest-editeval merge" in pages["reference/cli.md"]


def test_generated_pages_are_not_in_the_source_tree(generator):
    assert all(not (ROOT / "docs" / path).exists() for path in generator.GENERATED)


def test_the_benchmark_option_names_every_built_in_benchmark(pages):
    row = _rows(pages["reference/options.md"])["--editeval-benchmark"]
    assert [name for name in benchmarks.BUILTIN if name not in row] == []


def test_the_version_agrees_in_the_package_the_cli_the_readme_and_the_changelog():
    import subprocess
    import sys
    import tomllib

    from pytest_editeval import __version__
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__
    cli = subprocess.run([sys.executable, "-c", "from pytest_editeval.cli import main; main(['--version'])"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and cli.stdout.strip() == f"pytest-editeval {__version__}"
    assert f"version {__version__}" in (ROOT / "README.md").read_text()
    assert re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1) == __version__


def test_help_shows_the_options_in_the_same_groups(pytester):
    """`pytest --help` has one section a group, in the reference's order, each holding its options."""
    text = pytester.runpytest("--help").stdout.str()
    sections = [f"pytest-editeval, {title.lower()}:" for title, _, _ in options.GROUPS]
    positions = [text.find(section) for section in sections]
    assert -1 not in positions and positions == sorted(positions), positions
    judge = text[positions[2]:positions[3]]
    assert "--editeval-judge-backend" in judge and "--editeval-threshold" not in judge
    assert "--editeval-threshold" in text[positions[3]:positions[4]]
