"""`seamfix apply` on a Megatron fork, executed before and after: the check benchmarks/RESULTS.md records for forks.

    python benchmarks/apply_megatron_fork.py TREE [--prelude FILE] [--work DIR] [--jobs N]

``TREE`` holds the fork's ``megatron`` package (``megatron/core`` at least). Two copies of it are made in the work
folder and one is rewritten by ``seamfix apply`` (adapter ``megatron/core/mla_seam.py``, ``allow`` the MLA
implementation files, as the suite's own Megatron tests configure it). In each copy, in fresh interpreters that
import only that copy's ``megatron``: tiny MLA and dense GPTModels are built on the CPU through
``seamfix.runtime.megatron`` and trained one step (``tests/codemods/megatron_model.py``: a digest of the loss and
of every gradient's bytes), and every module apply rewrote is imported (``tests/codemods/import_each.py``). Prints
one JSON object: apply's summary line, the files rewritten, whether the two trees' training digests are equal
(with the losses; a worker that fails in the original tree, e.g. a release ``seamfix.runtime.megatron`` does not
support, leaves only the imports compared), and the modules whose import fails differently. Exit 0 when the trees
agree, 1 when not.

``--prelude FILE`` is Python run in each interpreter before megatron-core is used, for a fork that needs something
to run on a CPU: ``benchmarks/fork_preludes/flagscale_cpu.py`` points FlagScale's platform layer at the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "codemods"), str(REPO / "tests" / "runtime" / "megatron")]
from megatron_releases import TYPING_OVERRIDE  # noqa: E402 - the suite's helpers, not a package
from test_megatron_apply import changed_files  # noqa: E402
from test_megatron_corpus import ALLOW  # noqa: E402

ADAPTER = "megatron/core/mla_seam.py"
ADAPTER_MODULE = ADAPTER.removesuffix(".py").replace("/", ".")
WORKER = REPO / "tests" / "codemods" / "megatron_model.py"
IMPORTER = REPO / "tests" / "codemods" / "import_each.py"
# Runs the prelude (if any), then the script, as `python SCRIPT ARGS...` would.
LAUNCHER = "import runpy, sys; {prelude}sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path, help="a folder holding the fork's megatron package")
    parser.add_argument("--prelude", type=Path, help="Python run before megatron-core in every interpreter")
    parser.add_argument("--work", type=Path, help="where the two copies go (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="seamfix-fork-"))
    original, rewritten = work / "original", work / "rewritten"
    for tree in (original, rewritten):
        shutil.copytree(args.tree / "megatron", tree / "megatron", ignore=shutil.ignore_patterns("__pycache__"))
        (tree / "sitecustomize.py").write_text(TYPING_OVERRIDE)
    allow = ", ".join(f'"{path}"' for path in ALLOW)
    (rewritten / "pyproject.toml").write_text(
        f'[tool.seamfix]\nadapter = "{ADAPTER}"\nallow = [{allow}]\nrespect-gitignore = false\n'
    )
    applied = subprocess.run([sys.executable, "-m", "seamfix", "apply", "--jobs", str(args.jobs), "."],
                             cwd=rewritten, capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    changed = _changed_modules(original, rewritten)
    prelude = args.prelude.read_text() if args.prelude else ""
    trained = [_last_json(_python(tree, prelude, WORKER, str(work / f"{tree.name}.rendezvous"))) for tree in
               (original, rewritten)]  # fmt: skip
    imported = [_last_json(_python(tree, prelude, IMPORTER, *changed)) for tree in (original, rewritten)]
    # the adapter is new: only the rewritten tree has it
    failing = {module for module in set(imported[0]) | set(imported[1]) if module != ADAPTER_MODULE}
    import_differences = sorted(m for m in failing if _last_line(imported[0].get(m)) != _last_line(imported[1].get(m)))
    report = {
        "apply": applied.stderr.splitlines()[0] if applied.stderr else "",
        "apply_exit": applied.returncode,
        "rewritten_modules": changed,
        "training": "did not run in the original"
        if not trained[0]
        else "equal"
        if trained[0] == trained[1]
        else "different",
        "losses": {name: run.get("loss") for name, run in trained[0].items()} if trained[0] else None,
        "import_differences": import_differences,
        "import_failures_in_both": sorted(failing - set(import_differences)),
        "work": str(work),
    }
    print(json.dumps(report, indent=1))
    agree = applied.returncode in (0, 1) and trained[0] == trained[1] and not import_differences
    return 0 if agree else 1


def _changed_modules(original: Path, rewritten: Path) -> list[str]:
    """The modules apply rewrote or added, by import name."""
    return [path.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for path in
            changed_files(original, rewritten)]  # fmt: skip


def _python(tree: Path, prelude: str, script: Path, *arguments: str) -> str:
    """``python SCRIPT ARGUMENTS`` after ``prelude``, importing ``tree``'s megatron; its standard output."""
    environment = {**os.environ, "PYTHONPATH": str(tree), "NO_VCS_VERSION": "1"}
    launcher = LAUNCHER.format(prelude=f"exec({prelude!r}); " if prelude else "")
    proc = subprocess.run([sys.executable, "-c", launcher, str(script), *arguments], cwd=tree, env=environment,
                          capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(f"{script.name} in {tree}: exit {proc.returncode}\n{proc.stderr[-2000:]}\n")
    return proc.stdout


def _last_json(output: str) -> dict:
    lines = output.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _last_line(text: str | None) -> str | None:
    return text.strip().splitlines()[-1] if text else None


if __name__ == "__main__":
    sys.exit(main())
