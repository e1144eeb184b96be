"""ImgEdit-Bench (PKU-YuanGroup/ImgEdit), the basic single-turn suite: 737 rows in 9 edit types, one judge call a
row, three 1-5 sub-scores, scored exactly as the official scripts do (imgedit_official.py holds the rules).

Data: only `Benchmark.tar` of the Hugging Face dataset `sysuyy/ImgEdit` (never the 1.2 M training pairs), its
Benchmark/singleturn/ part extracted safely once (archives.py). `--editeval-dataset` also takes a local
Benchmark.tar, a folder holding Benchmark/singleturn/, or the singleturn folder itself.
Judge prompts are not ours to ship (no licence): they are read from the download's
Benchmark/singleturn/judge_prompt.json (or `--editeval-judge-prompts FILE`), and a template that differs from the
official text (SHA-256 fingerprints shipped in benchmarks/prompts/imgedit_prompt_hashes.json) is said in one warning line.
Scores: row = round(mean of the kept sub-scores, 2); type = mean of its rows, rounded to 2 decimals; the
official headline ("Overall" on the leaderboard) = the unweighted mean of the nine type scores; the sample mean
over all rows is reported too (BAGEL's and lmms-eval's headline). Output layout: one flat folder of <key>.png.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, BenchmarkOptions, Metric, Parsed, Protocol
from pytest_editeval.benchmarks import imgedit_official as official
from pytest_editeval.data.dataset import Dataset, FileImages, Row
from pytest_editeval.errors import InputError
from pytest_editeval.options.types import Option, path

SCORE = "score"


class ImgEditRecipe:
    """The recipe's part of a Benchmark (ImgEdit-Bench, and a declared set with recipe = "imgedit"): one call a
    row with a template by subset, read with the official line rule."""

    metrics = (Metric(SCORE, "Score", "S", low=1.0, high=5.0, decimals=2),)
    headline_metric = SCORE
    protocols = (Protocol("official", "basic_bench.py: text, original, edited as raw bytes labelled PNG; "
                          "no temperature, no max_tokens", headline_averaging="macro"),)
    default_averaging = "macro"
    averaging_labels = {"macro": "type mean, official", "micro": "sample mean"}
    subset_decimals = 2  # the leaderboard averages type scores printed with 2 decimals
    row_formula = "mean of the reply's '<Label>: <1-5>' lines (official line rule), rounded to 2 decimals"
    options = (Option("judge-prompts", "ImgEdit: the judge prompt JSON to use instead of the download's "
                      "Benchmark/singleturn/judge_prompt.json", path, metavar="FILE", group="Judge"),)

    def questions(self, row: Row, protocol: str, context: Mapping):
        prompts = context["prompts"]
        template = prompts.get(row.subset, prompts.get("default"))
        if template is None:
            raise InputError(f"no judge template for {row.subset!r} (and no \"default\")")
        return [official.question(_official_row(row), template)]

    def parse(self, question, text: str) -> Parsed:
        return Parsed(values=official.parse_official(text))  # UnreadableReply: re-asked, then an error row

    def score_row(self, row: Row, answers: Mapping[str, Parsed]) -> dict[str, float | None]:
        return {SCORE: official.row_score(answers[official.QUESTION_NAME].values)}

    def combine_answers(self, question: str, answers: list[Parsed], reduce) -> Parsed:
        """The row formula reads each answer's mean sub-score (however many lines it kept): those are combined,
        kept as a one-value list; the row's rounding to 2 decimals then happens once, as officially."""
        return Parsed(values=[reduce([official.mean_score(a.values) for a in answers])])


class ImgEditBench(ImgEditRecipe, Benchmark):
    name = "imgedit"
    dataset_writer = "pytest_editeval.testing.imgedit_factory:WRITER"  # make_dataset, the fixture plugin, the demo
    title = "ImgEdit-Bench"
    default_dataset = "sysuyy/ImgEdit"
    default_hub = "huggingface"
    default_judge_model = "gpt-4.1"  # the leaderboard's judge (the scripts default to gpt-4o)
    subset_hints = {official.SUBSET_UGE: "the UGE suite is its own benchmark, with its own headline: "
                                         "--editeval-benchmark=imgedit-uge"}

    def known_subsets(self) -> tuple[str, ...]:
        return official.EDIT_TYPES  # the UGE suite is its own benchmark (imgedit_uge.py): its own headline

    def resolve_dataset(self, spec: str, hub: str, offline: bool) -> Path:
        from pytest_editeval.data.hub import resolve_dataset

        return resolve_dataset(spec, hub, offline, allow_patterns=[official.TAR_NAME])

    def load(self, folder: Path, options: BenchmarkOptions) -> Dataset:
        singleturn = official.find_singleturn(folder, extract_to=options.extract_to)
        rows, warnings = official.load_rows(singleturn)
        prompt_file = options.judge_prompts or singleturn / official.PROMPTS_FILE
        if not prompt_file.exists():
            raise InputError(f"no ImgEdit-Bench judge prompts at {prompt_file}: the download's "
                             f"Benchmark/singleturn/{official.PROMPTS_FILE} is missing; pass --editeval-judge-prompts "
                             "FILE (a JSON of one template per edit type)")
        prompts = official.load_judge_prompts(prompt_file)
        changed = [name for name, text in prompts.items() if official.fingerprint_mismatches({name: text})]
        if changed:  # one line: a user's own wording is allowed, but its numbers are not the leaderboard's
            warnings.append(f"ImgEdit-Bench judge template(s) {', '.join(changed)} in {prompt_file} differ from the "
                            "official texts (SHA-256): scores are not comparable with published numbers")
        return Dataset(rows=[_row(r, singleturn) for r in rows], images=FileImages(singleturn), root=singleturn,
                       warnings=warnings, context={"prompts": prompts})

    def output_path(self, row: Row) -> Path:
        return Path(f"{row.key}.png")

    def edited_in_folder(self, folder: Path, rows: list[Row], language: str) -> dict[str, Path]:
        return official.edited_images_in_folder(folder, [r.key for r in rows if r.problem is None])


IMGEDIT = ImgEditBench()


def _row(r: official.ImgEditRow, singleturn: Path) -> Row:
    return Row(id=r.test_id, key=r.key, subset=r.edit_type if r.subset == official.SUBSET_BASIC else r.subset,
               instruction=r.prompt if isinstance(r.prompt, str) else "", language="en",
               inputs=(r.image_id,) if r.problem is None else (), problem=r.problem)


def _official_row(row: Row) -> official.ImgEditRow:
    return official.ImgEditRow(key=row.key, edit_type=row.subset, prompt=row.instruction,
                               image_id=row.inputs[0], image=None)
