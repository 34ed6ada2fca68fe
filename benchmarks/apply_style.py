"""Does `seamfix apply`'s output pass a Megatron fork's own formatters?

megatron-core's `megatron/` sources (an unpacked wheel), with Megatron-LM's black and isort settings (black
at 100 columns, string normalization and magic trailing commas skipped; isort's black profile with
`megatron` first-party) and the two MLA implementation files allowed. Counts, before and after apply: files
black would reformat, files isort would re-sort, and lines over 100 columns among the lines apply wrote
(the adapter's included). Run it from the repository root, with black and isort installed (the test extra):

    python benchmarks/apply_style.py /tmp/mcpack/0.16.1
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = """\
[tool.seamfix]
adapter = "megatron/core/mla_seam.py"
allow = ["megatron/core/transformer/multi_latent_attention.py", "megatron/core/fusions/fused_mla_yarn_rope_apply.py"]

[tool.black]
line_length = 100
skip_string_normalization = true
skip_magic_trailing_comma = true

[tool.isort]
profile = "black"
line_length = 100
known_first_party = ["megatron"]
"""
LINE_LENGTH = 100


def flagged(tool: list[str], root: Path, marker: str) -> set[str]:
    """The files a checking formatter names (black: "would reformat X", isort: "ERROR: X Imports ...")."""
    proc = subprocess.run([sys.executable, "-m", *tool, "megatron"], cwd=root, capture_output=True, text=True)
    names = set()
    for line in (proc.stdout + proc.stderr).splitlines():
        if marker in line:
            path = Path(next(word for word in line.split() if word.endswith(".py")))
            names.add((path.relative_to(root) if path.is_absolute() else path).as_posix())
    return names


def long_written_lines(before: Path, after: Path) -> list[int]:
    """The lengths of the lines apply wrote that are over the line length."""
    lengths = []
    for path in sorted((after / "megatron").rglob("*.py")):
        original = before / path.relative_to(after)
        old = original.read_text().splitlines() if original.exists() else []
        new = path.read_text().splitlines()
        for tag, _, _, start, end in difflib.SequenceMatcher(None, old, new).get_opcodes():
            if tag != "equal":
                lengths += [len(line) for line in new[start:end] if len(line) > LINE_LENGTH]
    return lengths


def _same(original: Path, path: Path) -> bool:
    return original.exists() and original.read_bytes() == path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="a folder holding megatron-core's unpacked `megatron/`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        before, after = Path(scratch, "before"), Path(scratch, "after")
        for root in (before, after):
            shutil.copytree(args.wheel / "megatron", root / "megatron")
            (root / "pyproject.toml").write_text(CONFIG)
        proc = subprocess.run([sys.executable, "-m", "seamfix", "apply"], cwd=after, capture_output=True, text=True)
        print(proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"apply exit {proc.returncode}")
        changed = [p for p in (after / "megatron").rglob("*.py") if not _same(before / p.relative_to(after), p)]
        print(f"files apply wrote: {len(changed)}")
        for name, tool, marker in (("black", ["black", "--check"], "would reformat"),
                                   ("isort", ["isort", "--check-only"], "ERROR:")):  # fmt: skip
            old, new = flagged(tool, before, marker), flagged(tool, after, marker)
            print(f"{name}: {len(old)} files flagged before, {len(new)} after; flagged after and not before: "
                  f"{sorted(new - old) or 'none'}")  # fmt: skip
        lengths = long_written_lines(before, after)
        print(f"lines apply wrote over {LINE_LENGTH} columns: {len(lengths)}, longest {max(lengths, default=0)}")


if __name__ == "__main__":
    main()
