"""Options are declared where they belong (a judge backend's module, the judges package, a benchmark) and the
option table, --help, the ini twins, the panel file's keys and the docs reference all follow the declarations."""

from __future__ import annotations

import json
import sys

import pytest

from pytest_editeval import benchmarks, judges
from pytest_editeval.judges import options as judge_options
from pytest_editeval.judges.settings import JudgeSpec
from pytest_editeval.options import table as options

from .conftest import API_KEY, output_of

# A whole judge backend in one module: its options, its checks, its judge. Registered with judges.register.
FAKE_BACKEND = '''
from pytest_editeval.errors import InputError
from pytest_editeval.options.types import Option, number

OPTIONS = (
    Option("judge-fake-level", "fake: how loud the fake judge is (default {default})", number(int, 0), metavar="N",
           default=3, field="fake_level", panel_key="fake_level", one_judge=True),
)


def configure(spec, facts):
    extra = getattr(spec, "backoff_factor", None)
    raise InputError(f"fake judge {spec.model!r}: level {spec.fake_level}, timeout {spec.timeout_s}, factor {extra}")


def create(spec, **_):
    raise AssertionError("configure refuses every run")
'''


@pytest.fixture
def fake_backend(pytester, monkeypatch):
    (pytester.path / "fake_judge_backend.py").write_text(FAKE_BACKEND)
    monkeypatch.syspath_prepend(str(pytester.path))
    monkeypatch.setitem(judges.BACKENDS, "fake", judges.Backend("fake_judge_backend", (), None, "a test's judge"))
    yield
    sys.modules.pop("fake_judge_backend", None)


@pytest.fixture
def fake_run(pytester, monkeypatch, gedit, edits, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)

    def _run(*args):
        return pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                  f"--editeval-images={edits}", f"--editeval-cache-dir={tmp_path / 'cache'}",
                                  "-p", "no:cacheprovider", *args)
    return _run


def editeval_error(result) -> str:
    errors = [line for line in result.errlines if line.startswith("ERROR: editeval:")]
    assert len(errors) == 1, output_of(result)
    return errors[0]


def test_a_backend_declared_in_one_module_gets_help_ini_twins_panel_keys_and_docs(fake_backend, fake_run, pytester,
                                                                                   tmp_path):
    help_text = output_of(pytester.runpytest("--help"))
    assert "--editeval-judge-fake-level=N" in help_text and "fake: how loud the fake judge is (default 3)" in help_text
    assert "fake (a test's judge)" in help_text  # the backend choice lists it
    assert "editeval_judge_fake_level" in help_text  # the ini twin

    # the option's value reaches the backend's spec: command line, then ini, then the declared default
    result = fake_run("--editeval-judge-backend=fake", "--editeval-judge-model=m", "--editeval-judge-fake-level=7")
    assert result.ret == 4 and "fake judge 'm': level 7, timeout 120.0" in editeval_error(result)
    pytester.makeini("[pytest]\nediteval_judge_fake_level = 5\n")
    result = fake_run("--editeval-judge-backend=fake", "--editeval-judge-model=m")
    assert "fake judge 'm': level 5" in editeval_error(result)
    pytester.makeini("[pytest]\nediteval_judge_fake_level = loud\n")
    result = fake_run("--editeval-judge-backend=fake")
    assert result.ret == 4 and "ini option editeval_judge_fake_level: 'loud' is not an integer" in output_of(result)
    pytester.makeini("[pytest]\n")
    result = fake_run("--editeval-judge-backend=fake", "--editeval-judge-model=m")
    assert "fake judge 'm': level 3" in editeval_error(result)
    # another backend's option is a usage error, not ignored
    result = fake_run("--editeval-judge-fake-level=7")
    assert result.ret == 4 and ("--editeval-judge-fake-level is for --editeval-judge-backend fake; this run's judge "
                                "backend is openai") in editeval_error(result)

    # the panel file takes its key, for its backend only
    panel = tmp_path / "panel.toml"
    panel.write_text('[[judges]]\nbackend = "fake"\nmodel = "f"\nfake_level = 9\ntimeout = 5\n')
    result = fake_run(f"--editeval-judge-panel={panel}")
    assert result.ret == 4 and "fake judge 'f': level 9, timeout 5.0" in editeval_error(result)
    panel.write_text('[[judges]]\nmodel = "gpt-4.1"\nfake_level = 9\n')
    result = fake_run(f"--editeval-judge-panel={panel}")
    assert "judges[0].fake_level: applies to the fake backend, not openai" in editeval_error(result)
    panel.write_text('[[judges]]\nbackend = "fake"\nmodel = "f"\nfake_level = -1\n')
    assert "judges[0].fake_level: -1 must be a whole number >= 0" in editeval_error(fake_run(f"--editeval-judge-panel={panel}"))
    # ... and the option naming one judge is refused beside a panel
    result = fake_run(f"--editeval-judge-panel={panel}", "--editeval-judge-fake-level=1")
    assert "--editeval-judge-fake-level (or the ini key editeval_judge_fake_level) names one judge" in editeval_error(result)

    # the generated options reference lists it, and its panel key
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "docs"))
    try:
        import gen_reference
    finally:
        sys.path.pop(0)
    page = gen_reference.options_page()
    assert "| `--editeval-judge-fake-level` | `editeval_judge_fake_level` | integer &gt;= 0 | 3 |" in page
    assert "| `fake_level` | fake | `--editeval-judge-fake-level` | 3 |" in page


def test_a_shared_judge_option_added_in_one_place_appears_everywhere(fake_backend, fake_run, pytester, monkeypatch,
                                                                     tmp_path):
    from pytest_editeval.options.types import Option, number

    factor = Option("judge-backoff-factor", "how much each retry's delay grows (default {default})",
                    number(float, 1), metavar="F", default=2.0, field="backoff_factor", panel_key="backoff_factor")
    monkeypatch.setattr(judge_options, "SHARED", (*judge_options.SHARED, factor))

    assert options.by_name()["judge-backoff-factor"] is factor and options.group_of("judge-backoff-factor") == "Judge"
    help_text = output_of(pytester.runpytest("--help"))
    assert "--editeval-judge-backoff-factor=F" in help_text and "grows (default 2)" in help_text
    assert JudgeSpec(backend="openai", model="m", recipe="r").backoff_factor == 2.0  # the default, written once
    result = fake_run("--editeval-judge-backend=fake", "--editeval-judge-model=m", "--editeval-judge-backoff-factor=3")
    assert "factor 3.0" in editeval_error(result)
    pytester.makeini("[pytest]\nediteval_judge_backoff_factor = 4\n")
    assert "factor 4.0" in editeval_error(fake_run("--editeval-judge-backend=fake", "--editeval-judge-model=m"))
    pytester.makeini("[pytest]\n")
    assert "factor 2.0" in editeval_error(fake_run("--editeval-judge-backend=fake", "--editeval-judge-model=m"))
    panel = tmp_path / "panel.toml"
    panel.write_text('[[judges]]\nbackend = "fake"\nmodel = "f"\nbackoff_factor = 1.5\n')
    assert "factor 1.5" in editeval_error(fake_run(f"--editeval-judge-panel={panel}"))
    panel.write_text('[[judges]]\nbackend = "fake"\nmodel = "f"\nbackoff_factor = 0.5\n')
    assert "judges[0].backoff_factor: 0.5 must be a finite number >= 1" in editeval_error(
        fake_run(f"--editeval-judge-panel={panel}"))


def test_benchmark_options_come_from_their_benchmarks():
    from pytest_editeval.benchmarks.imgedit import ImgEditBench
    from pytest_editeval.benchmarks.kris import KrisBench

    table = options.by_name()
    assert table["kris-fix-anomaly"] is KrisBench.options[0]
    # two benchmarks declare --editeval-judge-prompts: one option, both helps
    assert table["judge-prompts"].help.startswith(ImgEditBench.options[0].help + "; RISEBench: ")
    core = {opt.name for opt in options.CORE}
    assert not {"judge-prompts", "kris-fix-anomaly"} & core
    assert not any(name.startswith("judge-") for name in core - {"judge-recipe"})  # judge options live in judges/
    assert [n for n in benchmarks.BUILTIN if n not in options.by_name()["benchmark"].help] == []


# ---- --editeval-protocol is the one option for how the judge is asked; --editeval-judge-recipe is deprecated ------
DEPRECATION = ("editeval: deprecated: --editeval-judge-recipe (ini editeval_judge_recipe) goes in the next release: "
               "use --editeval-protocol editscore")


def test_protocol_takes_the_recipe_with_the_same_results_and_cache_keys(run, judge, tmp_path):
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    result = run("--editeval-protocol=editscore", "--editeval-subsets=color_alter", f"--editeval-json={new}")
    assert result.ret == 0, output_of(result)
    assert DEPRECATION not in output_of(result)
    result.stdout.fnmatch_lines(["*editeval: gedit (en), protocol official, recipe editscore, judge gpt-4.1 (openai)*"])
    asked = judge.count
    result = run("--editeval-judge-recipe=editscore", "--editeval-subsets=color_alter", f"--editeval-json={old}")
    assert result.ret == 0, output_of(result)
    assert [line for line in result.outlines if "deprecated" in line] == [DEPRECATION]
    assert judge.count == asked  # every answer from the cache: the same requests, the same keys
    a, b = json.loads(new.read_text()), json.loads(old.read_text())
    assert a["protocol"] == b["protocol"] == "official"
    counts = ("usage", "cache_saved", "cost")  # the second run asked nothing: its answers came from the cache
    assert {k: v for k, v in a["judge"].items() if k not in counts} == {k: v for k, v in b["judge"].items() if k not in counts}
    assert a["judge"]["recipe"] == "editscore" and b["judge"]["cache_saved"]["answers"] == a["judge"]["usage"]["requests"]
    assert [s["scores"] for s in a["samples"]] == [s["scores"] for s in b["samples"]]


def test_protocol_and_recipe_together_and_bad_names(run, judge, tmp_path):
    both = tmp_path / "both.json"
    result = run("--editeval-protocol=evalscope+editscore", "--editeval-subsets=color_alter", "--editeval-limit=1",
                 f"--editeval-json={both}")
    assert result.ret == 0, output_of(result)
    asked = judge.count
    result = run("--editeval-protocol=evalscope", "--editeval-judge-recipe=editscore", "--editeval-subsets=color_alter",
                 "--editeval-limit=1")
    assert result.ret == 0 and judge.count == asked
    data = json.loads(both.read_text())
    assert data["protocol"] == "evalscope" and data["judge"]["recipe"] == "editscore"
    result = run("--editeval-protocol=editscor")
    assert result.ret == 4
    assert "unknown protocol 'editscor' for gedit: it has official, evalscope, editscore" in output_of(result)
    result = run("--editeval-protocol=editscore", "--editeval-judge-recipe=viescore")
    assert result.ret == 4 and "name two recipes" in output_of(result)
