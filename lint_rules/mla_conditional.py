"""SEAM001 mla-conditional."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from seamfix.lint_rules.base import AstRule, Hit, Invalid, SourceFile
from seamfix.lint_rules.mla_expressions import MLAExpressions

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_PROBES = {"getattr": 3, "hasattr": 2, "isinstance": 2, "issubclass": 2}


class MLAConditional(AstRule):
    """
    ## What it does
    Flags a decision that depends on Multi-Latent Attention outside the seam: `if`/`elif`/`while` tests,
    conditional expressions, `assert` tests, comprehension filters, `match` subjects, guards and class
    patterns, `and`/`or` operators that select a value, subscript dispatch on an MLA value
    (`table[cfg.multi_latent_attention]`), and `getattr(x, "<mla field>", default)`, `hasattr`,
    `isinstance`/`issubclass` and `mapping.get("<mla key>")` probes of MLA names. A local variable
    assigned from an MLA expression in the same function (`use_mla = cfg.multi_latent_attention`) is MLA
    too, so `if use_mla:` is flagged.
    The finding points at the test expression.

    ## Why is this bad?
    Megatron-Core's MLA surface drifts every release (constructor arguments, RoPE ownership, config
    fields). Every MLA special case in generic builder code is a place an upstream bump can break, and a
    place a reviewer has to audit. Kept behind one adapter module (the seam), the bump touches the seam only.

    ## How to fix
    Move the decision into the adapter module and call it from the builder: `seamfix apply` does this for
    you, replacing the test by a named predicate (`mla_seam.uses_mla(config)`) and moving MLA-only arms
    into adapter functions. Calls into the adapter module are never flagged.

    ## Example
    ```python
    if self.position_embedding_type == "rope" and not self.config.multi_latent_attention:
        self.rotary_pos_emb = RotaryEmbedding(...)
    ```
    Use instead:
    ```python
    from megatron.core import mla_seam

    if self.position_embedding_type == "rope" and not mla_seam.uses_mla(self.config):
        self.rotary_pos_emb = RotaryEmbedding(...)
    ```
    """

    code = "SEAM001"
    name = "mla-conditional"
    summary = "MLA-specific conditional outside the seam"

    VALID = (
        "if config.position_embedding_type == 'rope':\n    pass\n",
        "from megatron.core import mla_seam\nif mla_seam.uses_mla(config):\n    pass\n",
        "from megatron.core.mla_seam import uses_mla\nx = a if uses_mla(cfg) else b\n",
        "if config.rotary_scaling_factor > 1 and config.mscale_all_dim:\n    pass\n",
        "if args.lora_rank > 0 or config.moe_latent_size:\n    pass\n",
        "def f(cfg):\n    use_mla = cfg.multi_latent_attention\n    return build(use_mla)\n",
        "def gdn(value):\n    v_head_dim = value.shape[-1]\n    if v_head_dim > 64:\n        pass\n",
        "spec = get_gpt_layer_local_spec(multi_latent_attention=config.multi_latent_attention)\n",
        "x = a or config.q_lora_rank\n",
        "rank = getattr(config, 'q_lora_rank')\n",
        "value = table.get('rope', None)\n",
        "if html_mode and mlp_type:\n    pass\n",
        "assert x, 'MLA is not supported with this option.'\n",
        "allowed = {'core_attn', 'mla_up_proj'}\nbad = set(mods) - allowed\nassert not bad, bad\n",
    )
    INVALID = (
        Invalid("if config.multi_latent_attention:\n    pass\n", line=1),
        Invalid("if x:\n    pass\nelif not self.config.multi_latent_attention:\n    pass\n", line=3),
        Invalid(
            "if (self.position_embedding_type == 'rope'\n        and not self.config.multi_latent_attention):\n"
            "    pass\n",
            line=1,
        ),
        Invalid("while cfg.kv_lora_rank:\n    pass\n", line=1),
        Invalid("x = (\n    a\n    if cfg.q_lora_rank is None\n    else b\n)\n", line=3),
        Invalid("assert config.multi_latent_attention, 'needs MLA'\n", line=1),
        Invalid("ys = [l for l in layers if l.config.multi_latent_attention]\n", line=1),
        Invalid("match cfg.multi_latent_attention:\n    case True:\n        pass\n", line=1),
        Invalid("match kind:\n    case 'rope' if cfg.multi_latent_attention:\n        pass\n", line=2),
        Invalid("match cfg:\n    case MLATransformerConfig():\n        pass\n", line=2),
        Invalid("x = cfg.multi_latent_attention and MLASelfAttention or SelfAttention\n", line=1),
        Invalid("attn = table[cfg.multi_latent_attention]\n", line=1),
        Invalid("latents = getattr(self.config, 'cache_mla_latents', None)\n", line=1),
        Invalid("ok = hasattr(config, 'q_lora_rank')\n", line=1),
        Invalid("rank = hf_config.get('kv_lora_rank', None)\n", line=1),
        Invalid("flag = os.environ.get('USE_MLA')\n", line=1),
        Invalid("cfg_is_mla = isinstance(self.config, MLATransformerConfig)\nbuild(cfg_is_mla)\n", line=1),
        Invalid("if getattr(self.config, 'cache_mla_latents', None) and max_seqlen_q > 1:\n    pass\n", line=1),
        Invalid("if 'mla_up_proj' in self.recompute_modules:\n    pass\n", line=1),
        Invalid("if module in ('mla_up_proj', 'mla_down_proj'):\n    pass\n", line=1),
        Invalid("if self.cache_mla_latent:\n    pass\n", line=1),
        Invalid("if args.attention_type == '--multi-latent-attention':\n    pass\n", line=1),
        Invalid("def f(multi_latent_attention=False):\n    if multi_latent_attention:\n        pass\n", line=2),
        Invalid("def f(cfg):\n    use_mla = cfg.multi_latent_attention\n    if use_mla:\n        pass\n", line=3),
        Invalid(
            "def f(cfg):\n    flag = cfg.kv_lora_rank\n    dense = not flag\n    return 1 if dense else 2\n", line=4
        ),
        Invalid("def f(cfg):\n    has = hasattr(cfg, 'q_lora_rank')\n    if has:\n        pass\n", line=2, count=2),
        Invalid(
            "def f(cfg):\n    if (m := cfg.multi_latent_attention):\n        pass\n    return m and 1\n",
            line=2,
            count=2,
        ),
        Invalid("def f(cfg):\n    a = cfg.multi_latent_attention\n    return [x for x in y if a]\n", line=3),
    )

    def check(self, source: SourceFile) -> Iterator[Hit]:
        finder = _DecisionFinder(source)
        finder.visit(source.tree, finder.aliases(source.tree, frozenset()))
        return iter(finder.hits)


class _DecisionFinder:
    """Walks a module once, reporting every decision on MLA and never a sub-expression of a reported one."""

    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.mla: MLAExpressions = source.mla
        self.hits: list[Hit] = []

    def aliases(self, scope: ast.AST, inherited: frozenset[str]) -> frozenset[str]:
        walrus_lines = self.source.may_mention_mla if self.source.has_walrus else None
        return self.mla.aliases(scope, inherited, walrus_lines)

    def visit(self, node: ast.AST, aliases: frozenset[str]) -> None:
        if not aliases and not self.source.may_mention_mla(node):
            return
        handler = getattr(self, "visit_" + type(node).__name__, None)
        if handler is not None:
            handler(node, aliases)
        else:
            self.visit_children(node, aliases)

    def visit_children(self, node: ast.AST, aliases: frozenset[str]) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child, aliases)

    def decision(self, test: ast.expr, aliases: frozenset[str], what: str, kind: str) -> None:
        atom = self.mla.atom(test, aliases)
        if atom is None:
            self.visit(test, aliases)
        else:
            self.hits.append(Hit(test, f"{what} depends on MLA (`{_short(atom)}`)", kind, atom))

    def visit_FunctionDef(self, node: ast.AST, aliases: frozenset[str]) -> None:
        self.visit_children(node, self.aliases(node, aliases))

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If | ast.While, aliases: frozenset[str]) -> None:
        keyword = type(node).__name__.lower()
        self.decision(node.test, aliases, f"`{keyword}` test", f"{keyword}-test")
        for statement in (*node.body, *node.orelse):
            self.visit(statement, aliases)

    visit_While = visit_If

    def visit_IfExp(self, node: ast.IfExp, aliases: frozenset[str]) -> None:
        self.decision(node.test, aliases, "conditional expression", "ifexp-test")
        self.visit(node.body, aliases)
        self.visit(node.orelse, aliases)

    def visit_Assert(self, node: ast.Assert, aliases: frozenset[str]) -> None:
        self.decision(node.test, aliases, "`assert` test", "assert-test")
        if node.msg is not None:
            self.visit(node.msg, aliases)

    def visit_comprehension(self, node: ast.comprehension, aliases: frozenset[str]) -> None:
        self.visit(node.target, aliases)
        self.visit(node.iter, aliases)
        for condition in node.ifs:
            self.decision(condition, aliases, "comprehension filter", "comprehension-filter")

    def visit_Match(self, node: ast.Match, aliases: frozenset[str]) -> None:
        self.decision(node.subject, aliases, "`match` subject", "match-subject")
        for case in node.cases:
            self.visit_match_case(case, aliases)

    def visit_match_case(self, node: ast.match_case, aliases: frozenset[str]) -> None:
        for pattern in ast.walk(node.pattern):
            if isinstance(pattern, ast.MatchClass) and self.mla.atom(pattern.cls) is not None:
                message = f"`case` pattern matches an MLA class (`{_short(pattern.cls)}`)"
                self.hits.append(Hit(pattern, message, "case-pattern", pattern.cls))
                break
            if isinstance(pattern, ast.MatchValue) and self.mla.atom(pattern.value, aliases) is not None:
                message = f"`case` pattern matches an MLA value (`{_short(pattern.value)}`)"
                self.hits.append(Hit(pattern, message, "case-pattern", pattern.value))
                break
        if node.guard is not None:
            self.decision(node.guard, aliases, "`case` guard", "case-guard")
        for statement in node.body:
            self.visit(statement, aliases)

    def visit_BoolOp(self, node: ast.BoolOp, aliases: frozenset[str]) -> None:
        operator = "and" if isinstance(node.op, ast.And) else "or"
        for operand in node.values[:-1]:
            atom = self.mla.atom(operand, aliases)
            if atom is not None:
                message = f"`{operator}` selects a value on MLA (`{_short(atom)}`)"
                self.hits.append(Hit(operand, message, "boolop-operand", atom))
            else:
                self.visit(operand, aliases)
        self.visit(node.values[-1], aliases)

    def visit_Subscript(self, node: ast.Subscript, aliases: frozenset[str]) -> None:
        self.visit(node.value, aliases)
        atom = self.mla.atom(node.slice, aliases)
        if atom is None:
            self.visit(node.slice, aliases)
        else:
            message = f"subscript dispatches on MLA (`{_short(atom)}`)"
            self.hits.append(Hit(node.slice, message, "subscript-slice", atom))

    def visit_Call(self, node: ast.Call, aliases: frozenset[str]) -> None:
        probed = _probed_argument(node)
        atom = self.mla.atom(probed, aliases) if probed is not None else None
        if atom is None:
            self.visit_children(node, aliases)
        else:
            self.hits.append(Hit(node, f"`{_short(node.func)}` probes MLA (`{_short(atom)}`)", "probe", atom))


def _probed_argument(call: ast.Call) -> ast.expr | None:
    """The argument a probe asks about: the attribute name of ``getattr(x, name, default)`` / ``hasattr``,
    the class of ``isinstance`` / ``issubclass``, the key of ``mapping.get(key[, default])``."""
    if isinstance(call.func, ast.Name):
        arity = _PROBES.get(call.func.id, 0)
        return call.args[1] if arity and len(call.args) >= arity else None
    if isinstance(call.func, ast.Attribute) and call.func.attr == "get" and 1 <= len(call.args) <= 2:
        return call.args[0]
    return None
    return 0


def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
