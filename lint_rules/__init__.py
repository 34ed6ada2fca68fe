"""seamfix's rules, one module each; ``RULES`` is the registry, ordered by code."""

from __future__ import annotations

from seamfix.lint_rules.base import AstRule, RuleInfo
from seamfix.lint_rules.mla_class_use import MLAClassUse
from seamfix.lint_rules.mla_conditional import MLAConditional
from seamfix.lint_rules.mla_import import MLAImport
from seamfix.lint_rules.syntax_error import SyntaxErrorRule
from seamfix.lint_rules.undefined_seam_function import UndefinedSeamFunction
from seamfix.lint_rules.unused_suppression import UnusedSuppression

RULES: dict[str, type[RuleInfo]] = {
    rule.code: rule
    for rule in sorted(
        (MLAConditional, MLAImport, MLAClassUse, UnusedSuppression, SyntaxErrorRule, UndefinedSeamFunction),
        key=lambda r: r.code,
    )
}
# The gate's own guarantees: neither deselected, nor ignored per file, nor suppressed by a comment.
ALWAYS_ON = frozenset({SyntaxErrorRule.code, UndefinedSeamFunction.code})


def rule_for(code_or_name: str) -> type[RuleInfo] | None:
    """The rule with this code (``SEAM001``) or name (``mla-conditional``)."""
    wanted = code_or_name.strip()
    return RULES.get(wanted.upper()) or next((r for r in RULES.values() if r.name == wanted.lower()), None)


def ast_rules(codes: frozenset[str]) -> list[AstRule]:
    return [rule() for code, rule in RULES.items() if code in codes and issubclass(rule, AstRule)]
