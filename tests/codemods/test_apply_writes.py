"""`seamfix apply`'s write phase: all or nothing, only inside the project, never over a user's edit, files
as users expect, one bad file never stopping the others, an honest exit code.

The fault-injection tests kill real `seamfix apply` processes (the test-only SEAMFIX_TEST_STOP_AFTER_WRITES
hook, and real signals at random instants of the write phase), then check that lint fails until a rerun
has brought the project to exactly the bytes of an uninterrupted run, with no temporary file left."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seamfix.atomic import write_atomic
from seamfix.codemods.apply import plan_apply, write_changes
from seamfix.config import load_settings
from seamfix.errors import SeamfixError
from seamfix.journal import JOURNAL_NAME, STOP_AFTER_WRITES, FileWrite, commit
from seamfix.parallel import Failed, map_items
from seamfix_testing import MLA_IF, run_seamfix

CONFIG = '[tool.seamfix]\nadapter = "pkg/mla_seam.py"\n'


def builder(index: int) -> str:
    return (
        f"def build_{index}(config, layer):\n    if config.multi_latent_attention:\n"
        f"        size = config.q_lora_rank + {index}\n    else:\n        size = layer\n    return size\n"
    )


def make_project(root: Path, builders: int) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text(CONFIG)
    (root / "pkg/__init__.py").write_text("")
    for index in range(builders):
        (root / f"pkg/builder_{index:03d}.py").write_text(builder(index))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file but the cache's (temporaries included, wherever they are)."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and ".seamfix_cache" not in p.parts)
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def seamfix(*args: str, cwd: Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seamfix", *args], cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)  # fmt: skip


def assert_rerun_completes(root: Path, reference: dict[str, bytes]) -> None:
    """Lint passes exactly when the tree is the uninterrupted run's; a rerun brings it there."""
    consistent = snapshot(root) == reference and not (root / ".seamfix_cache" / JOURNAL_NAME).exists()
    lint = run_seamfix("lint", "--no-cache", cwd=root)
    assert (lint.code == 0) == consistent, lint.stderr + lint.stdout
    rerun = run_seamfix("apply", cwd=root)
    assert rerun.code == 0, rerun.stderr
    assert snapshot(root) == reference  # which lint passes (see reference_after)
    assert temporaries(root) == [] and not (root / ".seamfix_cache" / JOURNAL_NAME).exists()


def reference_after(root: Path) -> dict[str, bytes]:
    """The bytes of an uninterrupted apply of ``root``, checked to pass lint."""
    assert run_seamfix("apply", cwd=root).code == 0
    assert run_seamfix("lint", "--no-cache", cwd=root).code == 0
    return snapshot(root)


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory) -> dict[str, bytes]:
    return reference_after(make_project(tmp_path_factory.mktemp("reference"), 12))


# 12 builders and the adapter: the journal (1), 13 staged files (2-14), the journal again (15), 13 renames
# (16: the adapter, 17-28: builders), the journal's removal (29). Other instants: the random signals below.
@pytest.mark.parametrize("stop_after", [1, 9, 15, 16, 23, 29])
def test_killed_after_any_write_a_rerun_gives_the_uninterrupted_result(tmp_path, small_reference, stop_after):
    root = make_project(tmp_path / "p", 12)
    killed = seamfix("apply", cwd=root, env={STOP_AFTER_WRITES: str(stop_after)})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert_rerun_completes(root, small_reference)


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A 300-builder project as it was, and its bytes after an uninterrupted apply."""
    pristine = make_project(tmp_path_factory.mktemp("large") / "p", 300)
    done = tmp_path_factory.mktemp("large-done") / "p"
    shutil.copytree(pristine, done)
    return pristine, reference_after(done)


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_signal_at_a_random_instant_of_the_write_phase(tmp_path, large, signum):
    pristine, reference = large
    root = tmp_path / "p"
    shutil.copytree(pristine, root)
    before = snapshot(root)
    process = seamfix("apply", cwd=root)
    wait_for(lambda: (root / ".seamfix_cache" / JOURNAL_NAME).exists() or process.poll() is not None)
    time.sleep(random.Random(signum).uniform(0, 0.05))
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    if signum != signal.SIGKILL and process.returncode != 0:  # not finished before the signal came
        assert process.returncode == 128 + signum and stderr.strip().splitlines()[-1] == "seamfix: interrupted", stderr
        assert snapshot(root) in (before, reference)  # staging undone, or the commit finished first
        assert temporaries(root) == [] and not (root / ".seamfix_cache" / JOURNAL_NAME).exists()
    assert_rerun_completes(root, reference)


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(child) for child in path.read_text().split()} if path.exists() else set()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from Linux's /proc")
# SIGHUP: the terminal or SSH session closed; it killed apply outright, temporaries left in the tree
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_workers_die_with_their_parent_and_ctrl_c_prints_one_line(tmp_path, signum):
    root = make_project(tmp_path / "p", 60)
    before = snapshot(root)
    process = seamfix("apply", "--jobs", "2", cwd=root, start_new_session=True)
    wait_for(lambda: len(children(process.pid)) >= 2 or process.poll() is not None)
    workers = children(process.pid)
    assert workers, "the rewrite finished before its workers could be seen"
    os.killpg(process.pid, signum) if signum != signal.SIGKILL else process.kill()  # Ctrl-C reaches the group
    _, stderr = process.communicate(timeout=60)
    wait_for(lambda: not any(alive(worker) for worker in workers), timeout=10)
    if signum != signal.SIGKILL:
        assert (process.returncode, stderr) == (128 + signum, "seamfix: interrupted\n")
        assert snapshot(root) == before and not (root / ".seamfix_cache" / JOURNAL_NAME).exists()
    assert "Error" not in stderr and "Traceback" not in stderr


def test_an_edit_made_while_apply_runs_is_kept_and_named(project):
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF, "pkg/b.py": MLA_IF})
    plan = plan_apply([root], load_settings(root), cwd=root)
    edited = MLA_IF + "# the user's edit\n"
    (root / "pkg/b.py").write_text(edited)
    errors = write_changes(plan)
    assert errors == ["pkg/b.py: changed since seamfix read it; not rewritten"]
    assert (root / "pkg/b.py").read_text() == edited
    assert "mla_seam." in (root / "pkg/a.py").read_text()
    called = (root / "pkg/a.py").read_text().split("mla_seam.")[1].split("(")[0]
    assert f"def {called}(" in (root / "pkg/mla_seam.py").read_text()  # a's call has its function
    assert temporaries(root) == []


def test_an_adapter_edited_meanwhile_means_no_file_is_rewritten(project):
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/mla_seam.py": '"""Ours."""\n',
                    "pkg/a.py": MLA_IF})  # fmt: skip
    before = snapshot(root)
    plan = plan_apply([root], load_settings(root), cwd=root)
    (root / "pkg/mla_seam.py").write_text('"""Ours, edited."""\n')
    errors = write_changes(plan)
    assert errors[0] == "pkg/mla_seam.py: changed since seamfix read it; not rewritten" and len(errors) == 2
    assert snapshot(root) == {**before, "pkg/mla_seam.py": b'"""Ours, edited."""\n'}


def test_a_folder_that_cannot_be_written_skips_its_files_only(project, monkeypatch):
    """A read-only folder (simulated: the suite may run as root, whom permissions do not stop)."""
    import seamfix.journal

    files = {"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF, "pkg/ro/__init__.py": "",
             "pkg/ro/b.py": MLA_IF}  # fmt: skip
    root = project(files)
    real_stage = seamfix.journal.stage

    def stage(temp: Path, data: bytes, mode: int | None) -> None:
        if temp.parent.name == "ro":
            raise PermissionError(errno.EACCES, "Permission denied")
        real_stage(temp, data, mode)

    monkeypatch.setattr(seamfix.journal, "stage", stage)
    errors = write_changes(plan_apply([root], load_settings(root), cwd=root))
    assert errors == ["pkg/ro/b.py: cannot write: Permission denied; not rewritten"]
    assert (root / "pkg/ro/b.py").read_text() == MLA_IF and "mla_seam." in (root / "pkg/a.py").read_text()
    assert temporaries(root) == []


def test_a_full_disk_at_the_adapter_changes_nothing(project, monkeypatch):
    import seamfix.journal

    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF, "pkg/b.py": MLA_IF})
    before = snapshot(root)
    real_stage = seamfix.journal.stage

    def stage(temp: Path, data: bytes, mode: int | None) -> None:
        if "mla_seam" in temp.name:
            temp.write_bytes(data[: len(data) // 2])  # a partly written temporary, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_stage(temp, data, mode)

    monkeypatch.setattr(seamfix.journal, "stage", stage)
    plan = plan_apply([root], load_settings(root), cwd=root)
    with pytest.raises(SeamfixError, match=r"pkg/mla_seam.py: cannot write: No space left on device; nothing"):
        write_changes(plan)
    assert snapshot(root) == before and not (root / ".seamfix_cache" / JOURNAL_NAME).exists()


# `seamfix apply` with a fault injected at the operating system's door, in a process of its own (no hook in
# seamfix): SEAMFIX_FAULT="ENOSPC <name>" makes the write(2) into seamfix's temporary file for <name> store
# half its bytes and fail as a full disk does ("ENOSPC <name> lasting": every later one too, the disk stays
# full); SEAMFIX_FAULT="EACCES <folder>" refuses creating files and folders in <folder>, as a read-only
# folder does (simulated: the suite may run as root, whom permissions do not stop).
FAULTY_SEAMFIX = """
import errno, os, sys
from seamfix.atomic import TEMP_SUFFIX
from seamfix.cli import main

kind, where, *lasting = os.environ["SEAMFIX_FAULT"].split()
real_open, real_mkdir, real_write = os.open, os.mkdir, os.write
full = False

def write(descriptor, data):
    global full
    name = os.path.basename(os.readlink(f"/proc/self/fd/{descriptor}"))
    if name.endswith(TEMP_SUFFIX) and (full or name.startswith(f".{where}.")):
        full = bool(lasting)
        real_write(descriptor, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_write(descriptor, data)

def read_only(path):
    return os.path.dirname(os.path.abspath(path)) == os.path.abspath(where)

def open_(path, flags, *args, **kwargs):
    if flags & os.O_CREAT and read_only(path) and not os.path.exists(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return real_open(path, flags, *args, **kwargs)

def mkdir(path, *args, **kwargs):
    if read_only(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return real_mkdir(path, *args, **kwargs)

if kind == "ENOSPC":
    os.write = write
else:
    os.open, os.mkdir = open_, mkdir
sys.argv[0] = "seamfix"
main()
"""


def faulty_apply(root: Path, fault: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", FAULTY_SEAMFIX, "apply"]
    env = {**os.environ, "SEAMFIX_FAULT": fault}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


# The 12 builders' project: a full disk at the journal, the adapter, or a builder; for a moment or lasting.
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="finds seamfix's temporaries through Linux's /proc")
@pytest.mark.parametrize(
    ("fault", "named", "untouched"),
    [
        ("ENOSPC apply-journal.json", ".seamfix_cache/apply-journal.json", True),
        ("ENOSPC mla_seam.py lasting", "pkg/mla_seam.py", True),
        ("ENOSPC builder_005.py", "pkg/builder_005.py", False),  # that file alone is left, the rest written
        ("ENOSPC builder_005.py lasting", ".seamfix_cache/apply-journal.json", True),  # the commit cannot start
    ],
)
def test_a_full_disk_in_the_write_phase_changes_nothing_or_a_rerun_completes(
    tmp_path, small_reference, fault, named, untouched
):
    root = make_project(tmp_path / "p", 12)
    before = snapshot(root)
    failed = faulty_apply(root, fault)
    assert failed.returncode == 2, failed.stderr
    (error,) = [line for line in failed.stderr.splitlines() if "No space left on device" in line]
    assert named in error and error.startswith("seamfix: error: ") and "Traceback" not in failed.stderr
    assert error.endswith("; nothing was changed" if untouched else "; not rewritten")
    assert (snapshot(root) == before) == untouched
    assert temporaries(root) == [] and not (root / ".seamfix_cache" / JOURNAL_NAME).exists()
    assert_rerun_completes(root, small_reference)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="as the full-disk test")
def test_a_read_only_adapter_folder_changes_nothing(tmp_path):
    root, clean = tmp_path / "p", tmp_path / "clean"
    files = {"pyproject.toml": CONFIG.replace("pkg/mla_seam.py", "pkg/seam/mla_seam.py"), "pkg/__init__.py": "",
             "pkg/seam/__init__.py": "", "pkg/a.py": MLA_IF, "pkg/b.py": MLA_IF}  # fmt: skip
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    shutil.copytree(root, clean)
    reference = reference_after(clean)
    before = snapshot(root)
    failed = faulty_apply(root, f"EACCES {root / 'pkg/seam'}")
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        "seamfix: error: pkg/seam/mla_seam.py: cannot write: Permission denied; nothing was changed"
    ]
    assert snapshot(root) == before and temporaries(root) == []
    assert_rerun_completes(root, reference)


def test_symlinked_files_are_rewritten_at_their_target_once_and_stay_links(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ext.py").write_text(MLA_IF)
    root = project({"p/pyproject.toml": CONFIG, "p/pkg/__init__.py": "", "p/pkg/real.py": MLA_IF}) / "p"
    (root / "pkg/alias.py").symlink_to("real.py")
    (root / "pkg/ext.py").symlink_to(outside / "ext.py")
    (root / "pkg/extdir").symlink_to(outside, target_is_directory=True)
    result = run_seamfix("apply", cwd=root)
    assert result.code == 2
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("seamfix: error:"))
    assert len(errors) == 1 and errors[0].startswith("seamfix: error: pkg/ext.py: not rewritten: its real path")
    assert (root / "pkg/alias.py").is_symlink() and (root / "pkg/ext.py").is_symlink()
    assert "mla_seam." in (root / "pkg/real.py").read_text()
    assert (outside / "ext.py").read_text() == MLA_IF
    explicit = run_seamfix("apply", "pkg/extdir", cwd=root)  # a linked folder given explicitly
    assert explicit.code == 2 and "pkg/extdir/ext.py: not rewritten: its real path" in explicit.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["ext.py"] and (outside / "ext.py").read_text() == MLA_IF


def test_adapter_through_a_linked_folder(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = project({"p/pyproject.toml": '[tool.seamfix]\nadapter = "pkg/out/mla_seam.py"\n', "p/pkg/__init__.py": "",
                    "p/pkg/a.py": MLA_IF, "p/pkg/real/__init__.py": ""}) / "p"  # fmt: skip
    (root / "pkg/out").symlink_to(outside, target_is_directory=True)
    (root / "pkg/inside").symlink_to("real", target_is_directory=True)
    refused = run_seamfix("apply", cwd=root)
    assert refused.code == 2 and refused.stderr.count("\n") == 1 and "leads outside the project" in refused.stderr
    assert list(outside.iterdir()) == [] and (root / "pkg/a.py").read_text() == MLA_IF
    inside = run_seamfix("apply", "--adapter", "pkg/inside/mla_seam.py", cwd=root)
    assert inside.code == 0, inside.stderr
    assert (root / "pkg/real/mla_seam.py").is_file() and (root / "pkg/inside").is_symlink()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_files_follow_the_umask_and_rewritten_files_keep_their_mode(project, umask):
    root = project({"pyproject.toml": '[tool.seamfix]\nadapter = "pkg/seam/mla_seam.py"\n', "pkg/__init__.py": "",
                    "pkg/a.py": MLA_IF})  # fmt: skip
    (root / "pkg/a.py").chmod(0o640)
    proc = subprocess.run([sys.executable, "-m", "seamfix", "apply"], cwd=root, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(umask))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for new in ("pkg/seam/mla_seam.py", "pkg/seam/__init__.py"):  # the folder and its package file are new
        assert (root / new).stat().st_mode & 0o777 == 0o666 & ~umask
    assert (root / "pkg/a.py").stat().st_mode & 0o777 == 0o640
    imported = subprocess.run([sys.executable, "-c", "import pkg.a, pkg.seam.mla_seam"], cwd=root)
    assert imported.returncode == 0


def test_read_only_and_hard_linked_files_are_named_and_left(project):
    """Renaming a new file over them would bypass what their owner set up: a read-only file (a Perforce
    checkout not opened for edit; root ignores the mode) and a file with a second name, which would keep the
    old text. Both are errors (exit 2); the adapter alone is no reason to leave the others."""
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF, "pkg/locked.py": MLA_IF,
                    "pkg/linked.py": MLA_IF})  # fmt: skip
    (root / "pkg/locked.py").chmod(0o444)
    os.link(root / "pkg/linked.py", root / "linked_copy.py")
    result = run_seamfix("apply", "pkg", cwd=root)
    assert result.code == 2, result.stderr
    assert "pkg/locked.py: not rewritten: it is read-only (mode 444)" in result.stderr
    assert "pkg/linked.py: not rewritten: it has 2 hard links" in result.stderr
    assert "pkg/locked.py:2:8: SEAM001 not rewritten: it is read-only" in result.stderr  # the finding left, and why
    for name in ("pkg/locked.py", "pkg/linked.py", "linked_copy.py"):
        assert (root / name).read_text() == MLA_IF
    assert os.path.samefile(root / "pkg/linked.py", root / "linked_copy.py")
    assert "mla_seam." in (root / "pkg/a.py").read_text()
    (root / "pkg/mla_seam.py").chmod(0o444)  # a read-only adapter: nothing is written
    (root / "pkg/b.py").write_text(MLA_IF.replace("multi_latent_attention", "q_lora_rank"))
    result = run_seamfix("apply", "pkg/b.py", cwd=root)
    assert result.code == 2 and "pkg/mla_seam.py: cannot rewrite the adapter: it is read-only" in result.stderr
    assert "mla_seam" not in (root / "pkg/b.py").read_text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_module_never_blocks_apply(project):
    """apply reads every Python file of the project for patches and re-exports: a FIFO would block forever."""
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF})
    os.mkfifo(root / "pkg/pipe.py")
    result = run_seamfix("apply", cwd=root)
    assert result.code == 2 and "pkg/pipe.py: cannot read: not a regular file" in result.stderr
    assert "mla_seam." in (root / "pkg/a.py").read_text()
    (root / "pkg/mla_seam.py").unlink()
    os.mkfifo(root / "pkg/mla_seam.py")
    (root / "pkg/b.py").write_text(MLA_IF)
    result = run_seamfix("apply", "pkg/b.py", cwd=root)
    assert result.code == 2 and "the adapter is not a regular file" in result.stderr
    assert (root / "pkg/b.py").read_text() == MLA_IF


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_rewritten_files_keep_their_owner(project):
    """Apply run as root (a container) on a user's checkout leaves the user's files the user's."""
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF})
    os.chown(root / "pkg/a.py", 4321, 4322)
    assert run_seamfix("apply", cwd=root).code == 0
    status = (root / "pkg/a.py").stat()
    assert "mla_seam." in (root / "pkg/a.py").read_text() and (status.st_uid, status.st_gid) == (4321, 4322)


def test_a_file_whose_owner_cannot_be_kept_is_left(project, monkeypatch):
    """Not root: the owner of a file in a shared folder cannot be kept, so it is named and left as it is."""
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF})
    plan = plan_apply([root], load_settings(root), cwd=root)
    mine = os.stat(root / "pkg/a.py")
    theirs = os.stat_result((mine.st_mode, *mine[1:4], mine.st_uid + 1, *mine[5:]))
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, **kw: theirs if str(path).endswith("a.py") else real_stat(path, **kw))
    monkeypatch.setattr(os, "fchown", lambda *a: (_ for _ in ()).throw(PermissionError(errno.EPERM, "not yours")))
    errors = write_changes(plan)
    assert errors == [
        f"pkg/a.py: cannot write: cannot keep its owner (uid {mine.st_uid + 1}, gid {mine.st_gid}); not rewritten"
    ]
    assert (root / "pkg/a.py").read_text() == MLA_IF and temporaries(root) == []


def test_write_atomic_modes_and_symlinks(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "report.md", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o640
    (tmp_path / "link.md").symlink_to("report.md")
    write_atomic(tmp_path / "link.md", b"y")
    assert (tmp_path / "link.md").is_symlink() and (tmp_path / "report.md").read_bytes() == b"y"
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path, b"z")
    leftover = tmp_path / ".report.md.999999999.seamfix.tmp"  # a killed run's (no such process)
    leftover.write_bytes(b"")
    write_atomic(tmp_path / "report.md", b"w")
    assert not leftover.exists()


def test_deep_expressions_are_handled_in_lint_and_apply(project):
    chain = " + ".join(f"x{i % 7}" for i in range(3000))
    parameters = ", ".join(f"x{i}" for i in range(7))
    deep = f"def f(cfg, {parameters}):\n    if cfg.multi_latent_attention:\n        return 1\n    return {chain}\n"
    arm = " + ".join(f"cfg.q_lora_rank * {i}" for i in range(500))
    deep_arm = f"def g(cfg):\n    if cfg.multi_latent_attention:\n        return {arm}\n    return 0\n"
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/deep.py": deep,
                    "pkg/deep_arm.py": deep_arm, "pkg/ok.py": MLA_IF})  # fmt: skip
    lint = run_seamfix("lint", "--no-cache", cwd=root)
    assert lint.code == 1 and lint.stderr == "", lint.stderr
    assert [line.split(":")[0] for line in lint.stdout.splitlines()[:-1]] == ["pkg/deep.py", "pkg/deep_arm.py",
                                                                               "pkg/ok.py"]  # fmt: skip
    applied = run_seamfix("apply", cwd=root)
    assert applied.code == 0, applied.stderr
    assert run_seamfix("lint", "--no-cache", cwd=root).code == 0


def test_an_arm_too_deep_for_python_never_moves_into_the_adapter(project):
    # Python compiles a 1,100-term `+` but not one of 3,000 at its default recursion limit: the first arm
    # moves (its formatting check once died in `ast.dump`, stopping every file), the second must not (the
    # adapter, and every builder importing it, would no longer import); its module was broken already.
    def deep_arm(terms: int) -> str:
        arm = f"        return cfg.q_lora_rank{'+x' * terms}\n"
        return f"def g(cfg):\n    x = cfg.q_lora_rank\n    if cfg.multi_latent_attention:\n{arm}"

    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/fits.py": deep_arm(1100) + "    return 0\n",
                    "pkg/too_deep.py": deep_arm(3000) + "    return 0\n", "pkg/ok.py": MLA_IF})  # fmt: skip
    too_deep = (root / "pkg/too_deep.py").read_bytes()
    call = "import types, pkg.fits, pkg.ok; cfg = types.SimpleNamespace(multi_latent_attention=1, q_lora_rank=2)\n"
    call += "print(pkg.fits.g(cfg), pkg.ok.f(cfg))"
    before = subprocess.run([sys.executable, "-c", call], cwd=root, capture_output=True, text=True, check=True)
    applied = run_seamfix("apply", cwd=root)
    assert applied.code == 1 and "pkg/too_deep.py: self-check:" in applied.stderr, applied.stderr
    assert "too deeply nested" in applied.stderr and (root / "pkg/too_deep.py").read_bytes() == too_deep
    assert "mla_seam" in (root / "pkg/fits.py").read_text() and "mla_seam" in (root / "pkg/ok.py").read_text()
    after = subprocess.run([sys.executable, "-c", call], cwd=root, capture_output=True, text=True, check=True)
    assert after.stdout == before.stdout == "2202 1\n"


def _fails_on_three(item: int) -> int:
    if item == 3:
        raise RecursionError("maximum recursion depth exceeded")
    if item == 5:
        raise MemoryError
    return item * 10


def _no_setup() -> None:
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_one_item_failing_never_stops_the_others(workers):
    outcomes = dict(map_items(_fails_on_three, list(range(8)), workers=workers, initializer=_no_setup))
    assert outcomes.pop(3) == Failed("too deeply nested to analyse (RecursionError)")
    assert outcomes.pop(5) == Failed("out of memory while analysing it")
    assert outcomes == {item: item * 10 for item in (0, 1, 2, 4, 6, 7)}


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ("pkg", "not a folder"),
        (".", "must name a .py file"),
        ("pkg/mla_seam.pyi", "not a `.pyi` file"),
        ("pkg/my-seam.py", "`my-seam` is not a valid Python module name"),
        ("pkg/class.py", "`class` is not a valid Python module name"),
        ("../mla_seam.py", "is outside the project"),
    ],
)
def test_bad_adapter_paths_are_named(project, adapter, message):
    root = project({"pyproject.toml": f'[tool.seamfix]\nadapter = "{adapter}"\n', "pkg/__init__.py": ""})
    with pytest.raises(SeamfixError, match=r"`adapter` = .*" + message.replace(".", r"\.")):
        load_settings(root)


CALLS_F = "import sys\nfrom types import SimpleNamespace as C\n\nfrom pkg import a\n\n"
CALLS_F += "for on in (True, False):\n    try:\n        print(a.f(C(multi_latent_attention=on)))\n"
CALLS_F += "    except Exception as exc:\n        print(type(exc).__name__, exc)\n"


@pytest.mark.parametrize(
    ("adapter", "files", "message"),
    [
        (
            "pkg/mla_seam.py",
            {"pkg/mla_seam/__init__.py": "VERSION = 1\n"},
            "`pkg/mla_seam/__init__.py` is what `pkg.mla_seam` imports, not `pkg/mla_seam.py`",
        ),
        (
            "pkg/mla_seam.py",
            {"pkg/__init__.py": "from types import SimpleNamespace as mla_seam\n"},
            "`pkg/__init__.py` binds `mla_seam` at line 1",
        ),
        (
            "seams/mla_seam.py",
            {"seams.py": "VERSION = 1\n", "pkg/a.py": "from seams import VERSION\n\n\n" + MLA_IF},
            "`seams.py` is what `seams` imports, not the folder `seams`, which has no `__init__.py`",
        ),
        # a top-level `string.py` hides the standard library's from the project's scripts: `import logging` fails
        (
            "string.py",
            {"calls_f.py": CALLS_F.replace("from pkg import a", "import a") + "import logging\n", "a.py": MLA_IF},
            "`string` is a module of the standard library",
        ),
        # the new folder `pkg/seam/` (with an `__init__.py`) would hide `pkg/seam.py`: `a.py` imports from it
        (
            "pkg/seam/mla_seam.py",
            {"pkg/seam.py": "VERSION = 1\n", "pkg/a.py": "from pkg.seam import VERSION\n\n\n" + MLA_IF},
            "apply would create the package `pkg/seam/` beside `pkg/seam.py`",
        ),
        # the new `pkg/mla_seam.py` would hide the namespace folder `pkg/mla_seam/`, which `a.py` imports from
        (
            "pkg/mla_seam.py",
            {
                "pkg/mla_seam/kernels.py": "SCALE = 3\n",
                "pkg/a.py": MLA_IF.replace("1\n", "__import__('pkg.mla_seam.kernels')\n"),
            },
            "`pkg/mla_seam/` is a folder without `__init__.py` (a namespace package)",
        ),
    ],
    ids=[
        "package-beside",
        "init-binds-the-name",
        "module-beside-namespace-folder",
        "stdlib-name",
        "new-package-hides",
        "new-module-hides-namespace",
    ],  # fmt: skip
)
def test_an_adapter_the_seam_import_would_not_reach_changes_nothing(project, adapter, files, message):
    # `from pkg import mla_seam` would import something else than the adapter apply writes: every builder
    # calling into it would fail (AttributeError), or, for a standard-library name, other code would
    root = project({"pyproject.toml": f'[tool.seamfix]\nadapter = "{adapter}"\n', "pkg/__init__.py": "",
                    "pkg/a.py": MLA_IF, "calls_f.py": CALLS_F, **files})  # fmt: skip
    before = snapshot(root)
    ran = subprocess.run([sys.executable, "calls_f.py"], cwd=root, capture_output=True, text=True)
    result = run_seamfix("apply", cwd=root)
    assert result.code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert snapshot(root) == before
    again = subprocess.run([sys.executable, "calls_f.py"], cwd=root, capture_output=True, text=True)
    assert (again.returncode, again.stdout, again.stderr) == (ran.returncode, ran.stdout, ran.stderr)


def test_bad_adapter_and_baseline_paths_on_the_command_line(project):
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF})
    folder = run_seamfix("apply", "--adapter", "pkg", cwd=root)
    assert folder.code == 2 and folder.stderr.count("\n") == 1 and "must name a .py file" in folder.stderr
    baseline = run_seamfix("lint", "--write-baseline", "pkg", cwd=root)
    assert baseline.code == 2
    assert baseline.stderr == "seamfix: error: pkg: cannot write the baseline: is a folder, not a file\n"


def test_adapter_in_a_new_folder_of_a_package(project):
    root = project({"pyproject.toml": '[tool.seamfix]\nadapter = "pkg/seam/deep/mla_seam.py"\n',
                    "pkg/__init__.py": "", "pkg/a.py": MLA_IF})  # fmt: skip
    diff = run_seamfix("apply", "--diff", cwd=root)
    assert diff.code == 1 and "--- /dev/null\n+++ b/pkg/seam/deep/mla_seam.py" in diff.stdout
    assert run_seamfix("apply", cwd=root).code == 0
    assert (root / "pkg/seam/__init__.py").read_bytes() == (root / "pkg/seam/deep/__init__.py").read_bytes() == b""
    assert subprocess.run([sys.executable, "-c", "import pkg.a"], cwd=root).returncode == 0


def test_findings_left_are_listed_and_every_mode_exits_one(project):
    source = MLA_IF + "\n\ndef g():\n    return 1  # seamfix: ignore[SEAM001]\n"
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": source})
    left = "  pkg/a.py:11:15: SEAM100 `seamfix: ignore` suppresses nothing"
    for args in (["--check"], [], ["--diff"], []):  # before apply, then after it
        result = run_seamfix("apply", *args, cwd=root)
        assert result.code == 1, (args, result.stderr)
        assert "Left 1 finding that apply cannot fix:\n" + left in result.stderr, result.stderr
    assert "Nothing to change." in result.stderr


def test_a_second_apply_waits_for_no_one(project):
    """Two applies never interleave: the second fails at once while the first holds the lock."""
    from seamfix.journal import apply_lock

    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF})
    with apply_lock(root / ".seamfix_cache"):
        assert (root / ".seamfix_cache/.gitignore").read_text() == "*\n"  # the lock never shows in git status
        result = run_seamfix("apply", cwd=root)
    assert result.code == 2 and "another `seamfix apply` is running" in result.stderr
    assert (root / "pkg/a.py").read_text() == MLA_IF


def test_a_baseline_path_leading_out_through_a_link_is_refused(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = project({"p/pyproject.toml": CONFIG, "p/pkg/__init__.py": "", "p/pkg/a.py": MLA_IF}) / "p"
    (root / "ci").symlink_to(outside, target_is_directory=True)
    result = run_seamfix("lint", "--write-baseline", "ci/baseline.json", cwd=root)
    assert result.code == 2
    assert "ci/baseline.json: cannot write the baseline: leads outside the project" in result.stderr
    assert list(outside.iterdir()) == []
    assert run_seamfix("lint", "--write-baseline", str(outside / "b.json"), cwd=root).code == 0  # named outside


def test_an_adapter_linked_to_a_builder_changes_nothing(project):
    # both rewrites of `pkg/a.py` would be staged in one temporary: the builder's replaced the adapter's, and
    # every call into the seam raised AttributeError
    root = project({"pyproject.toml": CONFIG, "pkg/__init__.py": "", "pkg/a.py": MLA_IF, "calls_f.py": CALLS_F})
    (root / "pkg/mla_seam.py").symlink_to("a.py")
    before = snapshot(root)
    ran = subprocess.run([sys.executable, "calls_f.py"], cwd=root, capture_output=True, text=True)
    result = run_seamfix("apply", cwd=root)
    assert result.code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the adapter is a symlink to pkg/a.py, a file apply would rewrite as a builder" in result.stderr
    assert snapshot(root) == before and (root / "pkg/mla_seam.py").is_symlink()
    again = subprocess.run([sys.executable, "calls_f.py"], cwd=root, capture_output=True, text=True)
    assert (again.returncode, again.stdout, again.stderr) == (ran.returncode, ran.stdout, ran.stderr)


def test_two_writes_of_one_file_are_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "a.py"
    target.write_text("old\n")
    writes = [FileWrite(target, "a.py", b"old\n", b"first\n", True), FileWrite(target, "a.py", b"old\n", b"second\n")]
    with pytest.raises(SeamfixError, match="a.py: two rewrites of one file"):
        commit(writes, tmp_path / "cache")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.py"]
