"""SEAM100 unused-suppression."""

from __future__ import annotations

from seamfix.lint_rules.base import EngineRule, Invalid


class UnusedSuppression(EngineRule):
    """
    ## What it does
    Flags a `# seamfix: ignore[CODE]` (or bare `# seamfix: ignore`) comment that suppresses nothing on
    its line, or names a code that does not exist.

    ## Why is this bad?
    Suppressions are how a legacy codebase adopts the gate. Once the MLA branch they excused has moved
    behind the seam, a stale suppression would silently excuse the next leak on that line.

    ## How to fix
    Delete the comment (or the codes in it that no longer apply).

    ## Example
    ```python
    if config.position_embedding_type == "rope":  # seamfix: ignore[SEAM001]
        ...
    ```
    Use instead:
    ```python
    if config.position_embedding_type == "rope":
        ...
    ```
    """

    code = "SEAM100"
    name = "unused-suppression"
    summary = "suppression comment that suppresses nothing"

    VALID = (
        "if cfg.multi_latent_attention:  # seamfix: ignore[SEAM001]\n    pass\n",
        "if cfg.multi_latent_attention:  # seamfix: ignore\n    pass\n",
        "x = '# seamfix: ignore[SEAM001]'\n",
    )
    INVALID = (
        Invalid("x = 1  # seamfix: ignore[SEAM001]\n", line=1),
        Invalid("x = 1  # seamfix: ignore\n", line=1),
        Invalid("if cfg.multi_latent_attention:  # seamfix: ignore[SEAM001, SEAM999]\n    pass\n", line=1),
    )
