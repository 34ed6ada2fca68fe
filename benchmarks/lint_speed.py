"""How fast is `seamfix lint` next to `ruff check`, on real Megatron-Core code?

The corpus is the `megatron/` sources of seven megatron-core releases (0.10.0 to 0.16.1, about 2,045 .py
files), downloaded as wheels with pip and unzipped side by side under `<corpus>/tree/`. A pyproject.toml
written there allows the two MLA implementation files, as a real team would configure seamfix.

Three commands run in `<corpus>/tree`, interleaved round-robin for `--runs` rounds, wall-clock:

    ruff      ruff check --select E,F,W --no-cache --exit-zero -q .   (the issue's baseline)
    ruff-silent  the same with --silent instead of -q: on this corpus ruff reports ~36,000 findings
              (mostly E501), and printing them is most of its time; this is ruff's linting alone
    cold      seamfix lint --no-cache --exit-zero .
    warm      seamfix lint --exit-zero .   (cache filled by one untimed run first)
    cold-before  with `--before SEAMFIX`: that seamfix's cold run (another build, timed in the same rounds)

Goals: median(cold) <= 1.0 x median(ruff), median(warm) <= 0.3 x median(ruff); both ratios are also
given against ruff-silent, the stricter reading. The script prints a
markdown block for benchmarks/RESULTS.md and, with `--json FILE`, writes the raw timings.

Run it from the repository root, in the environment where seamfix and ruff are installed:

    python benchmarks/lint_speed.py [--runs 5] [--corpus DIR] [--json FILE]

The corpus is cached in benchmarks/.corpus by default; downloads and unzips are skipped when present.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

VERSIONS = ("0.10.0", "0.11.0", "0.12.3", "0.13.1", "0.14.0", "0.15.3", "0.16.1")
DEFAULT_CORPUS = Path(__file__).resolve().parent / ".corpus"
# The [tool.ruff] table stops ruff from climbing to an enclosing project's config (this repo's, when the
# corpus sits in benchmarks/.corpus), so ruff runs with its defaults wherever the corpus lives; neither tool
# may skip the corpus because this repository's git ignores benchmarks/.corpus.
CONFIG = """\
[tool.seamfix]
allow = ["multi_latent_attention.py", "fused_mla_yarn_rope_apply.py"]
respect-gitignore = false

[tool.ruff]
respect-gitignore = false
"""
GOALS = {"cold": 1.0, "warm": 0.3}
BASELINES = ("ruff", "ruff-silent")


def executable(name: str) -> str:
    """The tool installed next to this Python (a venv's bin/), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"lint_speed: `{name}` not found next to {sys.executable} nor on PATH")
    return found


def fetch_wheel(version: str, wheels: Path) -> Path:
    """The megatron-core wheel of ``version`` in ``wheels``, downloaded with pip unless already there."""
    pattern = f"megatron_core-{version}-*.whl"
    if not any(wheels.glob(pattern)):
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels), f"megatron-core=={version}"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    matches = sorted(wheels.glob(pattern))
    if not matches:
        sys.exit(f"lint_speed: pip fetched no wheel for megatron-core=={version} into {wheels}")
    return matches[0]


def extract(wheel: Path, target: Path) -> None:
    """Unzip ``wheel`` into ``target`` unless done already (via a temporary folder, so a crash leaves none)."""
    if target.is_dir():
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(partial)
    partial.rename(target)


def build_corpus(cache: Path) -> Path:
    """Download and unzip every release, write the seamfix config; return the tree to lint."""
    wheels, tree = cache / "wheels", cache / "tree"
    wheels.mkdir(parents=True, exist_ok=True)
    tree.mkdir(parents=True, exist_ok=True)
    for version in VERSIONS:
        extract(fetch_wheel(version, wheels), tree / version)
    (tree / "pyproject.toml").write_text(CONFIG, encoding="utf-8")
    return tree


def corpus_size(tree: Path) -> tuple[int, int]:
    """Number of .py files and their total lines."""
    files = list(tree.rglob("*.py"))
    lines = sum(path.read_bytes().count(b"\n") for path in files)
    return len(files), lines


def output(command: list[str], cwd: Path) -> str:
    """Stdout of ``command`` (which must succeed), stripped."""
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def count_findings(seamfix: str, tree: Path) -> int:
    """How many findings seamfix reports on the corpus (its JSON output is an array)."""
    return len(json.loads(output([seamfix, "lint", "--no-cache", "--format", "json", "--exit-zero", "."], tree)))


def shown(command: list[str]) -> str:
    """``command`` as a shell line, the executable by name only."""
    return shlex.join([Path(command[0]).name, *command[1:]])


def time_once(command: list[str], cwd: Path) -> float:
    """Wall-clock seconds of one run of ``command``, output discarded; a failing command stops the benchmark."""
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(f"lint_speed: exit {completed.returncode} from: {shlex.join(command)}")
    return elapsed


def warm_cache(seamfix: str, tree: Path) -> None:
    """Start seamfix's cache afresh and fill it with one untimed run."""
    shutil.rmtree(tree / ".seamfix_cache", ignore_errors=True)
    time_once([seamfix, "lint", "--exit-zero", "."], tree)


def time_rounds(commands: dict[str, list[str]], tree: Path, runs: int) -> dict[str, list[float]]:
    """Seconds per run of each command, the commands taking turns within each round."""
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for round_number in range(1, runs + 1):
        for name, command in commands.items():
            timings[name].append(time_once(command, tree))
        latest = ", ".join(f"{name} {times[-1]:.2f}s" for name, times in timings.items())
        print(f"round {round_number}/{runs}: {latest}", file=sys.stderr)
    return timings


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or platform.processor() where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(
    env: dict[str, str], corpus: dict[str, int], commands: dict[str, list[str]], timings: dict[str, list[float]]
) -> str:
    """The markdown block for benchmarks/RESULTS.md."""
    median = {name: statistics.median(times) for name, times in timings.items()}
    lines = [
        f"### seamfix lint speed, {env['date']}",
        "",
        f"- machine: {env['machine']}",
        f"- python: {env['python']}; ruff: {env['ruff']}; seamfix: {env['seamfix']}",
        f"- command: `{env['command']}`",
        f"- corpus: megatron-core {', '.join(VERSIONS)} wheels unzipped side by side: {corpus['files']:,} .py files, "
        f"{corpus['lines']:,} lines; seamfix `allow` = the 2 MLA implementation files; "
        f"{corpus['findings']:,} seamfix findings",
        f"- {len(next(iter(timings.values())))} rounds, commands interleaved round-robin, wall-clock seconds",
        "",
        "| command | median | min | max |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, times in timings.items():
        row = f"{median[name]:.2f} | {min(times):.2f} | {max(times):.2f}"
        lines.append(f"| {name}: `{shown(commands[name])}` | {row} |")
    if "cold-before" in median:
        lines += ["", f"median(cold) / median(cold-before) = {median['cold'] / median['cold-before']:.2f}"]
    lines += ["", "| ratio | value | goal | met |", "| --- | ---: | ---: | :---: |"]
    for baseline in BASELINES:
        for name, goal in GOALS.items():
            ratio = median[name] / median[baseline]
            met = "yes" if ratio <= goal else "no"
            lines.append(f"| median({name}) / median({baseline}) | {ratio:.2f} | <= {goal} | {met} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus cache (default benchmarks/.corpus)")
    parser.add_argument("--json", type=Path, help="also write the raw timings to this file")
    parser.add_argument(
        "--before", metavar="SEAMFIX", help="another seamfix executable (e.g. main's) timed cold in the same rounds"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ruff, seamfix = executable("ruff"), executable("seamfix")
    tree = build_corpus(args.corpus.resolve())
    commands = {
        "ruff": [ruff, "check", "--select", "E,F,W", "--no-cache", "--exit-zero", "-q", "."],
        "ruff-silent": [ruff, "check", "--select", "E,F,W", "--no-cache", "--exit-zero", "--silent", "."],
        "cold": [seamfix, "lint", "--no-cache", "--exit-zero", "."],
        "warm": [seamfix, "lint", "--exit-zero", "."],
    }
    if args.before:
        commands["cold-before"] = [args.before, "lint", "--no-cache", "--exit-zero", "."]
    files, lines = corpus_size(tree)
    corpus = {"files": files, "lines": lines, "findings": count_findings(seamfix, tree)}
    env = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, {cpu_model()}",
        "python": platform.python_version(),
        "ruff": output([ruff, "--version"], tree),
        "seamfix": output([seamfix, "--version"], tree),
        "command": shlex.join(["python", *sys.argv]),
    }
    warm_cache(seamfix, tree)
    timings = time_rounds(commands, tree, args.runs)
    print(report(env, corpus, commands, timings))
    if args.json:
        raw = {"env": env, "corpus": corpus, "commands": {n: shown(c) for n, c in commands.items()}}
        args.json.write_text(json.dumps({**raw, "seconds": timings}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
