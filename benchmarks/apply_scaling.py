"""Does `seamfix apply` scale linearly with the MLA conditionals in one file?

Each case is one generated module with N builder functions, each with an MLA conditional whose arm builds an
MLA class (`seamfix apply` routes the test and moves the arm into the adapter): N = 250, 500, 1,000, 2,000.
Each timed run is `python -m seamfix apply .` on a fresh copy (not timed), in a subprocess; wall-clock and
CPU seconds (user + system of the child: less sensitive to other load on the machine) are recorded.

`--baseline DIR` also times another seamfix tree (a checkout of an older commit) in the same run,
alternating with this one, imported through a shim folder that maps its source folders to the
`seamfix` package as pyproject.toml's package-dir does.

Goal: 2,000 conditionals in one file under 10 s on the 2-core machine. Prints a markdown block for
benchmarks/RESULTS.md. Run it from the repository root, in the environment where seamfix is installed:

    python benchmarks/apply_scaling.py [--runs 3] [--sizes 250 500 1000 2000] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = '[tool.seamfix]\nadapter = "pkg/mla_seam.py"\n'
HEADER = (
    "from megatron.core.transformer.attention import SelfAttention\n"
    "from megatron.core.transformer.multi_latent_attention import MLASelfAttention\n\n\n"
)
BUILDER = """\
def build_{i}(config, layer):
    if config.multi_latent_attention:
        module = MLASelfAttention(config, layer, q_lora_rank=config.q_lora_rank + {i})
    else:
        module = SelfAttention(config, layer)
    return module


"""
GOAL_SECONDS = 10.0
PACKAGE_DIRS = {"codemods": "codemods", "lint_rules": "lint_rules", "runtime": "runtime"}


def make_case(root: Path, conditionals: int) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text(CONFIG)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/model.py").write_text(HEADER + "".join(BUILDER.format(i=i) for i in range(conditionals)))


def shim(tree: Path, into: Path) -> Path:
    """A folder holding a `seamfix` package made of ``tree``'s source folders (symlinks)."""
    package = into / "seamfix"
    package.mkdir(parents=True)
    for entry in (tree / "seam").iterdir():
        (package / entry.name).symlink_to(entry)
    for name, folder in PACKAGE_DIRS.items():
        if (tree / folder).is_dir():
            (package / name).symlink_to(tree / folder)
    return into


def time_apply(conditionals: int, pythonpath: str | None) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds of one `seamfix apply .` on a fresh case, and its summary line."""
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "case"
        make_case(root, conditionals)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "seamfix", "apply", "."], cwd=root, env=env,
                              capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"apply_scaling: exit {done.returncode}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--baseline", type=Path, help="another seamfix source tree to time in the same run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        versions = {"this tree": None}
        if args.baseline:
            versions = {"baseline": str(shim(args.baseline.resolve(), Path(scratch) / "shim")), **versions}
        times: dict[tuple[str, int], list[tuple[float, float]]] = {}
        summaries = {}
        for size in args.sizes:
            for run in range(args.runs):
                for name, pythonpath in versions.items():  # alternating, so that load hits both alike
                    wall, cpu, summary = time_apply(size, pythonpath)
                    times.setdefault((name, size), []).append((wall, cpu))
                    summaries[name, size] = summary
                    print(f"{name} N={size} run {run + 1}: {wall:.2f}s wall, {cpu:.2f}s cpu", file=sys.stderr)
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.UTC)
    print(f"### seamfix apply: one file with N MLA conditionals, {now:%Y-%m-%d %H:%M UTC}")
    print()
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, load average at the end {load[0]:.1f}")
    print(f"- python {platform.python_version()}; command: `python {' '.join(sys.argv)}`; {args.runs} runs each")
    print()
    print("| version | N | median wall s | median CPU s | CPU s per 1,000 | result |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in versions:
        for size in args.sizes:
            walls, cpus = zip(*times[name, size], strict=True)
            cpu = statistics.median(cpus)
            print(f"| {name} | {size:,} | {statistics.median(walls):.2f} | {cpu:.2f} | {cpu / size * 1000:.2f} | "
                  f"{summaries[name, size]} |")  # fmt: skip
    largest = statistics.median(wall for wall, _ in times["this tree", max(args.sizes)])
    verdict = "met" if largest < GOAL_SECONDS else "not met"
    print(f"\nGoal: N = {max(args.sizes):,} under {GOAL_SECONDS:.0f} s (median wall): {verdict}.")


if __name__ == "__main__":
    main()
