"""Bad input never gives a traceback: each case is a finding or an error line, and the rest is still checked."""

import os

from seamfix_testing import MLA_IF, run_seamfix


def findings(root, *args):
    result = run_seamfix("lint", "--format", "json", *args, cwd=root)
    return result, [(f["path"], f["line"], f["column"], f["code"]) for f in result.json()]


def test_syntax_error_is_a_finding_and_other_files_are_checked(project):
    root = project({"broken.py": "if cfg.multi_latent_attention\n    pass\n", "ok.py": MLA_IF})
    result, found = findings(root)
    assert result.code == 1
    assert found == [("broken.py", 1, 30, "SEAM901"), ("ok.py", 2, 8, "SEAM001")]


def test_syntax_error_cannot_be_ignored_or_suppressed(project):
    root = project({"broken.py": "x = cfg.multi_latent_attention  # seamfix: ignore\ny = (\n"})
    result, found = findings(root, "--ignore", "SEAM901")
    assert [code for *_, code in found] == ["SEAM901"]


def test_non_utf8_nul_bytes_and_encoding_cookie(project):
    root = project(
        {
            "latin.py": b"x = 1\nif cfg.multi_latent_attention:  # caf\xe9\n    pass\n",
            "nul.py": b"x = 1\ny = cfg.multi_latent_attention\x00\n",
            "cookie.py": b"# -*- coding: latin-1 -*-\ns = '\xe9\xe9'; t = a if cfg.multi_latent_attention else b\n",
            "unknown.py": b"# -*- coding: no-such-codec -*-\nx = cfg.multi_latent_attention\n",
        }
    )
    result, found = findings(root)
    assert result.code == 1
    by_path = {path: (line, column, code) for path, line, column, code in found}
    assert by_path["latin.py"] == (2, 1, "SEAM901")
    assert by_path["nul.py"][0] == 2 and by_path["nul.py"][2] == "SEAM901"
    assert by_path["unknown.py"] == (1, 1, "SEAM901")  # the cookie's line; the tokenizer's column was -1
    # latin-1 decoded: each é is one character, so the test starts at column 20.
    assert by_path["cookie.py"] == (2, 20, "SEAM001")


def test_bom_and_crlf_keep_positions(project):
    root = project(
        {
            "bom.py": b"\xef\xbb\xbfif cfg.multi_latent_attention:\n    pass\n",
            "crlf.py": b"x = 1\r\nif y:\r\n    pass\r\nelif cfg.q_lora_rank:\r\n    pass\r\n",
            "cr.py": b"x = 1\rz = a if cfg.kv_lora_rank else b\r",
        }
    )
    _, found = findings(root)
    assert found == [
        ("bom.py", 1, 4, "SEAM001"),
        ("cr.py", 2, 10, "SEAM001"),
        ("crlf.py", 4, 6, "SEAM001"),
    ]


def test_non_ascii_columns_are_characters_not_bytes(project):
    root = project({"u.py": "s = 'ünïcödé'; x = 1 if cfg.multi_latent_attention else 2\n"})
    result = run_seamfix("lint", "--format", "json", cwd=root)
    (finding,) = result.json()
    line = "s = 'ünïcödé'; x = 1 if cfg.multi_latent_attention else 2"
    start = line.index("cfg") + 1
    assert (finding["column"], finding["end_column"]) == (start, start + len("cfg.multi_latent_attention"))


def test_a_path_with_a_newline_stays_on_its_finding_line(project):
    root = project({"nl\nx.py": MLA_IF, "tab\tx.py": MLA_IF})
    result = run_seamfix("lint", "--no-cache", cwd=root)
    assert result.code == 1
    assert result.stdout.splitlines() == [  # quoted as git quotes such paths
        '"nl\\nx.py":2:8: SEAM001 `if` test depends on MLA (`cfg.multi_latent_attention`)',
        '"tab\\tx.py":2:8: SEAM001 `if` test depends on MLA (`cfg.multi_latent_attention`)',
        "Found 2 findings.",
    ]


def test_an_error_about_a_path_with_a_newline_is_one_line(project):
    root = project({"ok.py": MLA_IF})
    os.mkfifo(root / "pipe\nx.py")  # never opened: named in an error
    result = run_seamfix("lint", "--no-cache", cwd=root)
    assert result.code == 2
    (line,) = result.stderr.splitlines()
    assert line == "seamfix: error: pipe\\nx.py: cannot read: not a regular file"
    assert result.stdout.splitlines()[-1] == "Found 1 finding."
