"""How fast is `seamfix apply` on real Megatron-Core code?

The corpus is the lint benchmark's (`benchmarks/lint_speed.py`): the `megatron/` sources of seven
megatron-core releases, about 2,045 .py files. Each timed run starts from a fresh copy of it in which the
release folders are renamed to importable names (`v0_16_1/megatron/...`), with a pyproject.toml allowing
the two MLA implementation files and putting the adapter at `mla_seam.py`; the copy is not timed.

    apply     seamfix apply .      (lint, LibCST on the files with findings over processes, adapter merge,
                                    writes, and the lint that decides the exit code)

Goal: median(apply) < 10 s. Prints a markdown block for benchmarks/RESULTS.md; `--json FILE` writes the
raw timings. Run it from the repository root, in the environment where seamfix is installed:

    python benchmarks/apply_speed.py [--runs 3] [--corpus DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lint_speed import DEFAULT_CORPUS, VERSIONS, build_corpus, corpus_size, cpu_model, executable, output, shown

CONFIG = """\
[tool.seamfix]
adapter = "mla_seam.py"
allow = ["multi_latent_attention.py", "fused_mla_yarn_rope_apply.py"]
"""
GOAL_SECONDS = 10.0


def importable_copy(tree: Path, target: Path) -> Path:
    """The corpus under ``target`` with release folders named as packages, and the apply config."""
    for release in sorted(p for p in tree.iterdir() if p.is_dir()):
        shutil.copytree(release, target / ("v" + re.sub(r"\W", "_", release.name)))
    (target / "pyproject.toml").write_text(CONFIG, encoding="utf-8")
    return target


def time_apply(seamfix: str, tree: Path) -> tuple[float, str]:
    """Wall-clock seconds of one `seamfix apply .` on a fresh copy, and its summary line."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = importable_copy(tree, Path(scratch) / "tree")
        start = time.perf_counter()
        completed = subprocess.run([seamfix, "apply", "."], cwd=copy, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if completed.returncode not in (0, 1):
        sys.exit(f"apply_speed: exit {completed.returncode}: {completed.stderr.strip()}")
    return elapsed, completed.stderr.strip().splitlines()[0]


def report(env: dict[str, str], corpus: dict[str, int], command: list[str], times: list[float], summary: str) -> str:
    median = statistics.median(times)
    return "\n".join(
        [
            f"### seamfix apply speed, {env['date']}",
            "",
            f"- machine: {env['machine']}",
            f"- python: {env['python']}; seamfix: {env['seamfix']}",
            f"- command: `{env['command']}`",
            f"- corpus: megatron-core {', '.join(VERSIONS)} (the lint benchmark's): {corpus['files']:,} .py files, "
            f"{corpus['lines']:,} lines; a fresh copy per run",
            f"- result: {summary}",
            f"- {len(times)} runs, wall-clock seconds",
            "",
            "| command | median | min | max | goal | met |",
            "| --- | ---: | ---: | ---: | ---: | :---: |",
            f"| `{shown(command)}` | {median:.2f} | {min(times):.2f} | {max(times):.2f} | < {GOAL_SECONDS:.0f} | "
            f"{'yes' if median < GOAL_SECONDS else 'no'} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus cache (default benchmarks/.corpus)")
    parser.add_argument("--json", type=Path, help="also write the raw timings to this file")
    args = parser.parse_args()
    seamfix = executable("seamfix")
    tree = build_corpus(args.corpus.resolve())
    files, lines = corpus_size(tree)
    command = [seamfix, "apply", "."]
    times, summary = [], ""
    for run in range(1, args.runs + 1):
        elapsed, summary = time_apply(seamfix, tree)
        times.append(elapsed)
        print(f"run {run}/{args.runs}: {elapsed:.2f}s", file=sys.stderr)
    env = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, {cpu_model()}",
        "python": platform.python_version(),
        "seamfix": output([seamfix, "--version"], tree),
        "command": shlex.join(["python", *sys.argv]),
    }
    print(report(env, {"files": files, "lines": lines}, command, times, summary))
    if args.json:
        raw = {"env": env, "corpus": {"files": files, "lines": lines}, "seconds": times, "summary": summary}
        args.json.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
