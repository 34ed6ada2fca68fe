"""`seamfix audit` on one pathological file: wall time and peak memory of copies of seamfix, in alternating rounds.

The file has 20,000 functions of 9 lines (180,000 lines), each with an MLA decision; one decision is changed in
the working tree and `seamfix audit --since HEAD --format json` must report exactly that one leak. Each variant is a
folder holding a checkout of seamfix (`seam/`, `lint_rules/`, `codemods/`, `runtime/`), imported through a shim as
the installed package is; its peak resident memory is the child's, from `wait4`.

    python benchmarks/audit_large_file.py --variant before=/tmp/seamfix-old --variant after=. --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUNCTION = (
    "def build_{i}(cfg, x):\n"
    '    """Builder {i}."""\n'
    "    if cfg.multi_latent_attention and cfg.q_lora_rank > {limit}:\n"
    "        y = x * {i}\n"
    "        return y + 1\n"
    "    z = x - {i}\n"
    "    w = z * 2\n"
    "    return w\n"
    "\n"
)


def make_repository(folder: Path, functions: int) -> int:
    """The repository with the big file committed and one decision changed in the working tree; that line."""
    (folder / "pkg").mkdir(parents=True)
    (folder / "pyproject.toml").write_text('[tool.seamfix]\nadapter = "pkg/mla_seam.py"\n')
    (folder / "pkg/__init__.py").write_text("")
    (folder / "pkg/mla_seam.py").write_text("def uses_mla(cfg):\n    return bool(cfg.multi_latent_attention)\n")
    text = "".join(FUNCTION.format(i=i, limit=i % 7) for i in range(functions))
    (folder / "pkg/big.py").write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=folder, check=True)
    subprocess.run(["git", "-c", "user.email=b@e", "-c", "user.name=b", "commit", "-qm", "big"], cwd=folder, check=True)
    changed = functions // 2
    old = f"q_lora_rank > {changed % 7}:\n        y = x * {changed}\n"
    assert text.count(old) == 1
    (folder / "pkg/big.py").write_text(text.replace(old, old.replace(f"> {changed % 7}", f"> {changed % 7 + 1}")))
    return changed * FUNCTION.count("\n") + 3


def make_shim(checkout: Path, folder: Path) -> Path:
    """A folder on PYTHONPATH where `seamfix` is ``checkout``'s sources, laid out as installed."""
    package = folder / "seamfix"
    package.mkdir(parents=True)
    for entry in (checkout / "seam").iterdir():
        (package / entry.name).symlink_to(entry.resolve())
    for name in ("lint_rules", "codemods", "runtime"):
        (package / name).symlink_to((checkout / name).resolve())
    return folder


def run_once(shim: Path, repo: Path, line: int) -> tuple[float, float]:
    """Seconds and peak megabytes of one audit; its report must be the one leak at ``line``."""
    environment = {**os.environ, "PYTHONPATH": str(shim)}
    command = [sys.executable, "-c", "from seamfix.cli import main; main()", "audit", "--since", "HEAD", "--format"]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen([*command, "json"], cwd=repo, env=environment, stdout=output)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        report = json.loads(output.read())
    leaks = [
        (file["path"], hunk["line"]) for file in report["files"] for hunk in file["hunks"] if hunk["kind"] == "leak"
    ]
    assert process.returncode == 1 and leaks == [("pkg/big.py", line)], (process.returncode, leaks)
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, metavar="LABEL=CHECKOUT")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--functions", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "repo"
        line = make_repository(repo, args.functions)
        variants = {
            label: make_shim(Path(checkout), Path(scratch) / f"shim-{label}")
            for label, checkout in (variant.split("=", 1) for variant in args.variant)
        }
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
        for round_number in range(args.rounds):
            for label, shim in variants.items():
                results[label].append(run_once(shim, repo, line))
                seconds, megabytes = results[label][-1]
                print(f"round {round_number + 1} {label}: {seconds:.1f} s, {megabytes:.0f} MB", flush=True)
        for label, runs in results.items():
            seconds = statistics.median(s for s, _ in runs)
            megabytes = statistics.median(m for _, m in runs)
            print(f"{label}: median {seconds:.1f} s, {megabytes:.0f} MB peak ({len(runs)} runs)")


if __name__ == "__main__":
    main()
