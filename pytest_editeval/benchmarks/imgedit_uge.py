"""ImgEdit-Bench's UGE suite (`--editeval-benchmark=imgedit-uge`): 47 hard, free-form edits, one judge call a
row with one fixed template, one score, scored as the official `Benchmark/UGE/` scripts do.

It is its own benchmark, not a tenth subset of `imgedit`: the basic suite's headline is the mean of its nine
type scores, and a UGE subset inside it would change that number. The UGE overall is round(mean of the row
scores, 2) (get_average_score.py), which is this benchmark's headline (the macro mean over its one subset,
rounded to 2 decimals).

Data: the rows are `UGE_edit.json` ({key: {"id", "prompt"}}); the originals are assumed to sit in the download's
`Benchmark/hard/` (not verified against the real tar: the hub cannot be reached from where this was written).
The template is the module-level string `prompt` of the official `UGE_bench.py`, read with `ast`, never run, and
never shipped here (the repository has no licence): from the download, beside the row file, or
`--editeval-judge-prompts`. A template that differs from the official text (SHA-256) is said in one warning line.
The judge call and the reply rule are the basic suite's (imgedit_official.question and parse_official).
"""

from __future__ import annotations

from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, BenchmarkOptions, Protocol
from pytest_editeval.benchmarks import imgedit_official as official
from pytest_editeval.benchmarks.imgedit import ImgEditBench, ImgEditRecipe
from pytest_editeval.data.dataset import Dataset, FileImages, Row


class ImgEditUgeBench(ImgEditRecipe, Benchmark):
    name = "imgedit-uge"
    dataset_writer = "pytest_editeval.testing.imgedit_factory:UGE_WRITER"  # make_dataset, the fixture plugin, the demo
    title = "ImgEdit-Bench UGE"
    default_dataset = ImgEditBench.default_dataset
    default_hub = ImgEditBench.default_hub
    default_judge_model = ImgEditBench.default_judge_model
    protocols = (Protocol("official", "UGE_bench.py: text, original, edited as raw bytes labelled PNG; "
                          "no temperature, no max_tokens", headline_averaging="macro"),)
    averaging_labels = {"macro": "official, rounded", "micro": "sample mean"}

    def known_subsets(self) -> tuple[str, ...]:
        return (official.SUBSET_UGE,)

    def resolve_dataset(self, spec: str, hub: str, offline: bool) -> Path:
        return ImgEditBench.resolve_dataset(self, spec, hub, offline)

    def load(self, folder: Path, options: BenchmarkOptions) -> Dataset:
        given = options.judge_prompts
        beside_given = (Path(given).parent,) if given is not None else ()
        rows_file, hard = official.find_uge(folder, extract_to=options.extract_to, also_look_in=beside_given)
        rows, warnings = official.load_uge_rows(rows_file, hard)
        template_file = official.find_uge_template(rows_file, hard, given)
        template = official.load_uge_prompt(template_file)
        if official.uge_fingerprint_mismatches(template):  # a user's own wording: allowed, but said
            warnings.append(f"ImgEdit-Bench UGE judge template in {template_file} differs from the official text "
                            "(SHA-256): scores are not comparable with published numbers")
        return Dataset(rows=[_row(r) for r in rows], images=FileImages(hard), root=hard, warnings=warnings,
                       context={"prompts": {official.SUBSET_UGE: template}})

    def output_path(self, row: Row) -> Path:
        return Path(f"{row.key}.png")

    def edited_in_folder(self, folder: Path, rows: list[Row], language: str) -> dict[str, Path]:
        return official.edited_images_in_folder(folder, [r.key for r in rows if r.problem is None])


IMGEDIT_UGE = ImgEditUgeBench()


def _row(r: official.ImgEditRow) -> Row:
    return Row(id=r.test_id, key=r.key, subset=official.SUBSET_UGE,
               instruction=r.prompt if isinstance(r.prompt, str) else "", language="en",
               inputs=(r.image_id,) if r.problem is None else (), problem=r.problem)
