"""The second adversarial round of `seamfix lint` (benchmarks/RESULTS.md, "Lint precision and recall, second
adversarial round"): hand-written snippets (benchmarks/lint_adversarial.toml), each labelled an MLA decision or
not before lint ran, linted through the command line with the defaults (so that test files get the default
`per-file-ignores`), one file per case.

    python benchmarks/lint_adversarial.py [CASES.toml] [--seamfix PATH] [-v]

prints recall (labelled decisions flagged) and precision (flagged cases that are decisions) per group, and the
misclassified cases; exit status 1 if any. `--seamfix` runs another build (a `seamfix` executable) on the same
cases. CASES.toml: another set in the same format (default lint_adversarial.toml), such as
benchmarks/lint_heldout_3.toml (the third round's independent held-out set). Every misclassification the
round fixed is also a VALID or INVALID sample of SEAM001. A case with `out_of_scope` (why) keeps its label but is
a decision the rule's documented scope does not reach (no MLA name in it): listed, not scored.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

CASES = Path(__file__).resolve().parent / "lint_adversarial.toml"
FILES = {
    "builder": "megatron/training/case_{id}.py",
    "test": "tests/unit_tests/test_{id}.py",
    "conftest": "tests/conftest.py",
    "core-test": "megatron/core/test_{id}.py",
    "core": "megatron/core/case_{id}.py",
    "tools": "tools/checkpoint/case_{id}.py",
}


def load(path: Path = CASES) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8"))["case"]


def findings_per_case(seamfix: str, cases: list[dict]) -> dict[str, int]:
    """The number of SEAM001 findings of each case."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pyproject.toml").write_text("[tool.seamfix]\n")
        owner = {}
        for case in cases:
            relpath = FILES[case["file"]].format(id=case["id"])
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (root / relpath).write_text(case["code"])
            owner[relpath] = case["id"]
        command = [seamfix, "lint", "--no-cache", "--exit-zero", "--format", "json", "."]
        findings = json.loads(subprocess.run(command, cwd=root, capture_output=True, text=True, check=True).stdout)
    counts = dict.fromkeys(owner.values(), 0)
    for finding in findings:
        if finding["code"] == "SEAM001":
            counts[owner[finding["path"]]] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="?", type=Path, default=CASES, help="the cases (default: %(default)s)")
    parser.add_argument("--seamfix", default=str(Path(sys.executable).with_name("seamfix")))
    parser.add_argument("-v", "--verbose", action="store_true", help="print the code of misclassified cases")
    args = parser.parse_args()
    cases = load(args.cases)
    counts = findings_per_case(args.seamfix, cases)
    wrong = 0
    for group in ("development", "held-out"):
        members = [case for case in cases if case["group"] == group and "out_of_scope" not in case]
        if not members:
            continue
        decisions = sum(case["decision"] for case in members)
        flagged = [case for case in members if counts[case["id"]]]
        hits = sum(case["decision"] for case in flagged)
        missed = [case for case in members if bool(counts[case["id"]]) != case["decision"]]
        wrong += len(missed)
        print(
            f"{group}: {decisions} decisions, {len(members) - decisions} non-decisions; recall {hits}/{decisions}, "
            f"precision {hits}/{len(flagged)}, non-decisions flagged {len(flagged) - hits}"
        )
        for case in missed:
            print(f"  {case['id']}: {'decision missed' if case['decision'] else 'non-decision flagged'}")
            if args.verbose:
                print("    " + case["code"].replace("\n", "\n    "))
    for case in (case for case in cases if "out_of_scope" in case):
        flagged = "flagged" if counts[case["id"]] else "not flagged"
        print(f"  {case['id']}: out of scope, {flagged} (labelled decision={case['decision']}): {case['out_of_scope']}")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
