"""SEAM901 syntax-error."""

from __future__ import annotations

from seamfix.lint_rules.base import EngineRule, Invalid


class SyntaxErrorRule(EngineRule):
    """
    ## What it does
    Reports a file that mentions MLA vocabulary but cannot be parsed as Python: a syntax error, bytes
    that are not valid in the file's encoding (UTF-8 unless a PEP 263 cookie says otherwise), or NUL bytes.
    A file that mentions no MLA vocabulary is not parsed at all (that is what keeps seamfix as fast as
    ruff); leave general syntax checking to your compiler or ruff.

    ## Why is this bad?
    seamfix cannot prove that a file it cannot read keeps MLA behind the seam, so the gate fails.
    This finding cannot be suppressed or deselected.

    ## How to fix
    Fix the syntax or the encoding of the file.

    ## Example
    ```python
    if config.multi_latent_attention
        ...
    ```
    Use instead:
    ```python
    if config.multi_latent_attention:
        ...
    ```
    """

    code = "SEAM901"
    name = "syntax-error"
    summary = "file mentioning MLA cannot be parsed"

    VALID = (
        "\ufeffif ok:\n    x = cfg.multi_latent_attention\n",
        "x = cfg.multi_latent_attention\r\ny = 2\r\n",
    )
    INVALID = (
        Invalid("if config.multi_latent_attention\n    pass\n", line=1),
        Invalid("x = cfg.multi_latent_attention\ny = (\n", line=2),
        Invalid("x = cfg.multi_latent_attention\x00\n", line=1),
        # An encoding the interpreter refuses: reported at the cookie, column 1 (the tokenizer gives none)
        Invalid("# -*- coding: no-such-codec -*-\nx = cfg.multi_latent_attention\n", line=1),
        Invalid("\ufeff# -*- coding: latin-1 -*-\nx = cfg.multi_latent_attention\n", line=1),
    )
