"""Does `seamfix lint` flag MLA decisions and nothing else, on real Megatron-Core code?

Two trees: megatron-core 0.16.1 (its PyPI wheel, fetched with pip as benchmarks/lint_speed.py does) and
the Megatron-Core main snapshot (`megatron/core` of /work/shared/upstream/megatron-lm-main-d98e8a6.tar.gz,
or `--snapshot`). Both are linted with `allow = []`: the MLA implementation files are full of MLA decisions
(and of look-alikes: slices, shape asserts, stores), so they are part of what is measured.

Labels (benchmarks/lint_labels.toml) name a line by its tree, file and stripped text, with the line number
as a hint only: a label matches the line of that text nearest to the hint, so upstream drift does not break
it. `decision`: real MLA decisions, read off the code (the recall set). `finding`: findings drawn in the
random sample, labelled `decision = true/false` by hand (the precision sample); those labelled false are
also non-decisions that must stay unflagged, as are the `non_decision` lines.

    python benchmarks/lint_precision.py [--corpus DIR] [--snapshot TAR] [--sample 40] [--seed 20261130]

prints a markdown block for benchmarks/RESULTS.md; sampled findings that carry no label yet are printed
as `finding` entries to label. Exit status 1 if a labelled decision is missed or a non-decision flagged.

Other codebases labelled in the same file (their paths relative to their own root, not `megatron/core`) are
measured with `--tree NAME=DIR` (repeatable), DIR a checkout of the commit the labels name (e.g. `git archive`
of a `fetch` mirror), linted as it is, with its own configuration (none: seamfix's defaults).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lint_speed import DEFAULT_CORPUS, executable, extract, fetch_wheel  # noqa: E402

RELEASE = "0.16.1"
MAIN = "main-d98e8a6"
SNAPSHOT = Path("/work/shared/upstream/megatron-lm-main-d98e8a6.tar.gz")
LABELS = Path(__file__).resolve().parent / "lint_labels.toml"
# The trees sit in benchmarks/.corpus, which this repository's .gitignore ignores: lint them anyway.
CONFIG = "[tool.seamfix]\nallow = []\nrespect-gitignore = false\n"
TEST_PARTS = ("tests", "test")
PACKAGE = "megatron/core"


@dataclass(frozen=True)
class Label:
    """One labelled line; ``source`` is the table it came from (decision, non_decision or finding)."""

    tree: str
    path: str
    text: str
    line: int
    decision: bool
    source: str
    note: str = ""


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    end_line: int
    message: str


def release_tree(corpus: Path) -> Path:
    """megatron-core 0.16.1's sources (wheel downloaded into ``corpus/wheels`` unless there)."""
    wheels = corpus / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    tree = corpus / "precision" / RELEASE
    tree.parent.mkdir(parents=True, exist_ok=True)
    extract(fetch_wheel(RELEASE, wheels), tree)
    (tree / "pyproject.toml").write_text(CONFIG, encoding="utf-8")
    return tree


def main_tree(corpus: Path, snapshot: Path) -> Path:
    """``megatron/core`` of the main snapshot, unpacked once (via a temporary folder)."""
    tree = corpus / "precision" / MAIN
    if not tree.is_dir():
        partial = tree.with_name(tree.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(snapshot) as archive:
            members = [m for m in archive.getmembers() if "/megatron/core/" in m.name and m.isfile()]
            for member in members:
                member.name = "megatron/core/" + member.name.split("/megatron/core/", 1)[1]
            archive.extractall(partial, members=members, filter="data")
        partial.rename(tree)
    (tree / "pyproject.toml").write_text(CONFIG, encoding="utf-8")
    return tree


def lint(seamfix: str, tree: Path, path: str = "megatron") -> list[Finding]:
    command = [seamfix, "lint", "--no-cache", "--format", "json", "--exit-zero", path]
    completed = subprocess.run(command, cwd=tree, check=True, capture_output=True, text=True)
    return [Finding(f["path"], f["line"], f["end_line"], f["message"]) for f in json.loads(completed.stdout)]


def load_labels(path: Path = LABELS) -> list[Label]:
    """Every label, its path made relative to the tree (the file's paths of the Megatron-Core trees are relative
    to ``megatron/core``, those of other codebases to their root)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    fixed = {"decision": {"decision": True}, "non_decision": {"decision": False}, "finding": {}}
    return [
        Label(**{**entry, "path": _tree_path(entry["tree"], entry["path"]), **value}, source=table)
        for table, value in fixed.items()
        for entry in data.get(table, [])
    ]


def _tree_path(tree: str, path: str) -> str:
    return f"{PACKAGE}/{path}" if tree in (RELEASE, MAIN) else path


def locate(tree: Path, label: Label) -> int:
    """The line of ``label``'s text in its file nearest to its hint; a stale label stops the run."""
    lines = (tree / label.path).read_text(encoding="utf-8").splitlines()
    matches = [number for number, text in enumerate(lines, 1) if text.strip() == label.text]
    if not matches:
        raise SystemExit(f"lint_precision: {label.tree}:{label.path}: no line reads {label.text!r} (stale label)")
    return min(matches, key=lambda number: abs(number - label.line))


def flagged(findings: list[Finding], path: str, line: int) -> bool:
    return any(f.path == path and f.line <= line <= f.end_line for f in findings)


def is_test_file(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1]
    return any(p in TEST_PARTS for p in parts[:-1]) or name.startswith("test_") or name.endswith("_test.py")


def sample(findings: list[Finding], size: int, seed: int) -> list[Finding]:
    """A fixed-seed random sample of the findings outside tests, one per line, in file order."""
    lines = sorted({(f.path, f.line): f for f in findings if not is_test_file(f.path)}.values(), key=_order)
    return sorted(random.Random(seed).sample(lines, min(size, len(lines))), key=_order)


def _order(finding: Finding) -> tuple[str, int]:
    return finding.path, finding.line


def evaluate(tree_name: str, tree: Path, findings: list[Finding], labels: list[Label], size: int, seed: int) -> dict:
    """Recall on the decisions, precision on the labelled sample, and every disagreement."""
    mine = [label for label in labels if label.tree == tree_name]
    located = {label: locate(tree, label) for label in mine}
    recall_set = [label for label in mine if label.source == "decision"]
    missed = [label for label in recall_set if not flagged(findings, label.path, located[label])]
    sampled_missed = [
        label
        for label in mine
        if label.source == "finding" and label.decision and not flagged(findings, label.path, located[label])
    ]
    wrongly = [label for label in mine if not label.decision and flagged(findings, label.path, located[label])]
    by_line = {(label.path, located[label]): label for label in mine if label in located}
    drawn = sample(findings, size, seed)
    judged = [by_line.get((f.path, f.line)) for f in drawn]
    unlabelled = [f for f, label in zip(drawn, judged, strict=True) if label is None]
    decisions = sum(1 for label in judged if label is not None and label.decision)
    return {
        "findings": len(findings),
        "outside_tests": sum(1 for f in findings if not is_test_file(f.path)),
        "recall_labels": len(recall_set),
        "missed": missed,
        "sampled_missed": sampled_missed,
        "wrongly_flagged": wrongly,
        "non_decision_labels": sum(1 for label in mine if not label.decision),
        "sampled": len(drawn),
        "labelled": len(drawn) - len(unlabelled),
        "sample_decisions": decisions,
        "unlabelled": unlabelled,
    }


def stub(tree_name: str, tree: Path, finding: Finding) -> str:
    """A line to add to the ``finding`` table, its ``decision`` left for a person to fill in."""
    text = (tree / finding.path).read_text(encoding="utf-8").splitlines()[finding.line - 1].strip()
    path = finding.path.removeprefix(PACKAGE + "/") if tree_name in (RELEASE, MAIN) else finding.path
    return (
        f"  {{ tree = {json.dumps(tree_name)}, path = {json.dumps(path)}, line = {finding.line}, "
        f"text = {json.dumps(text)}, decision = ? }},  # {finding.message}"
    )


def report(results: dict[str, dict], args: argparse.Namespace, seamfix_version: str) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### seamfix lint precision and recall, {date}",
        "",
        f"- {seamfix_version}, python {platform.python_version()}; "
        f"`python benchmarks/lint_precision.py --sample {args.sample} --seed {args.seed}`",
        f"- trees: megatron-core {RELEASE} (PyPI wheel), Megatron-Core main {MAIN.split('-', 1)[1]} "
        "(`megatron/core` of the snapshot); `allow = []` (implementation files included)",
        *([f"- other codebases, linted as they are: {', '.join(map('`{}`'.format, args.tree))}"] if args.tree else []),
        "",
        "| tree | findings | outside tests | recall (labelled decisions flagged) | precision (sample) "
        "| labelled non-decisions flagged |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        found = r["recall_labels"] - len(r["missed"])
        labelled = r["labelled"]
        precision = f"{r['sample_decisions']}/{labelled} = {r['sample_decisions'] / labelled:.1%}" if labelled else "-"
        if r["unlabelled"]:
            precision += f" ({len(r['unlabelled'])} of {r['sampled']} drawn unlabelled)"
        lines.append(
            f"| {name} | {r['findings']} | {r['outside_tests']} | {found}/{r['recall_labels']} | {precision} "
            f"| {len(r['wrongly_flagged'])}/{r['non_decision_labels']} |"
        )
    for name, r in results.items():
        for label in r["missed"]:
            lines.append(f"- missed ({name}): `{label.path}`: `{label.text}`")
        for label in r["wrongly_flagged"]:
            lines.append(f"- non-decision flagged ({name}): `{label.path}`: `{label.text}`")
        for label in r["sampled_missed"]:
            lines.append(f"- a sampled decision not flagged ({name}): `{label.path}`: `{label.text}` ({label.note})")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="download cache (benchmarks/.corpus)")
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT, help="Megatron-LM main snapshot (.tar.gz)")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--sample", type=int, default=40, help="findings drawn per tree for precision")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="also measure the labels of tree NAME on the checkout DIR (repeatable)")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    seamfix = executable("seamfix")
    corpus = args.corpus.resolve()
    trees = {RELEASE: release_tree(corpus), MAIN: main_tree(corpus, args.snapshot)}
    others = dict(tree.split("=", 1) for tree in args.tree)
    trees.update((name, Path(folder).resolve()) for name, folder in others.items())
    labels = load_labels(args.labels)
    results = {
        name: evaluate(
            name, tree, lint(seamfix, tree, "." if name in others else "megatron"), labels, args.sample, args.seed
        )
        for name, tree in trees.items()
    }
    for name, r in results.items():
        for finding in r["unlabelled"]:
            print(stub(name, trees[name], finding), file=sys.stderr)
    version = subprocess.run([seamfix, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    print(report(results, args, version))
    if any(r["missed"] or r["wrongly_flagged"] for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
