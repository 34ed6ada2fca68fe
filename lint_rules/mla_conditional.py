"""SEAM001 mla-conditional."""

from __future__ import annotations

from collections.abc import Iterator

from seamfix.analysis.decisions import decision_sites
from seamfix.analysis.source import Hit, SourceFile
from seamfix.lint_rules.base import AstRule, Invalid


class MLAConditional(AstRule):
    """
    ## What it does
    Flags a decision that depends on Multi-Latent Attention outside the seam, a place where control flow
    or a chosen value depends on MLA: `if`/`elif`/`while` tests, conditional expressions, `assert` tests,
    comprehension filters and `filter()` predicates, `match` subjects, guards and patterns (an MLA class or value,
    or a class or mapping pattern reading an MLA field or key: `case Config(multi_latent_attention=True)`),
    `and`/`or` operators that select a value (`cfg.multi_latent_attention and MLAAttention or Attention`,
    `cfg.q_lora_rank or cfg.hidden_size`: an operand that is a value, or a fallback named for a size),
    arithmetic on an MLA switch (a bool field of the vocabulary's `switches`) or on an `is`/`not` test of MLA
    (`n_heads * (1 + cfg.multi_latent_attention)`, `n * (cfg.q_lora_rank is not None)`; not an elementwise mask
    such as `scores * (pos < cfg.qk_pos_emb_head_dim)`),
    subscript dispatch on an MLA value (`table[cfg.multi_latent_attention]`) and a computed key looked up in a
    literal table keyed by MLA (`{"mla": MLAAttention, "mha": Attention}[cfg.attention_type]`, `.get(...)`: a named
    table is a registry, its keys not followed), probes of MLA names
    (`getattr(x, "<mla field>", default)`, `hasattr`, `isinstance`/`issubclass`, `mapping.get("<mla key>")`,
    `"<mla field>" in mapping`, and a read inside `try:` whose `except AttributeError`/`KeyError` handles its
    absence), and decorators keyed on MLA (`@register(MLASelfAttention)`, `@(a if cfg.multi_latent_attention else b)`,
    a bare `@dispatch.register` over a function whose first annotated parameter is an MLA class, as
    `functools.singledispatch` registers that annotation).
    A test is a decision when it names MLA anywhere, or reads an alias: a variable or `self` attribute
    holding an MLA value at that point (`use_mla = cfg.multi_latent_attention` … `if use_mla:`). Aliases are
    flow-sensitive (a later or overwritten assignment does not count; branches merge as "may be MLA"), and
    MLA values flow through assignment, `not`/`and`/`or`/`if-else`, comparison, attribute and subscript reads,
    probes, `bool`/`int`/`float`/`str`/`any`/`all` and functions that return an MLA value, never through
    another call's result (`key = apply_rotary_pos_emb(..., mla_rotary_interleaved=...)` is not MLA; a test on
    `run(q, absorbed_mla=True)`, an MLA keyword given a literal, decides nothing either) nor
    through arithmetic into a new variable (`rows = n * cfg.kv_lora_rank` is a size). An attribute a class
    sets on `self` from an MLA value in one method is MLA in all its methods, as are its properties and
    methods that return an MLA value (`self.latent`, `self.uses_latent()`), readers made on the spot
    (`get = attrgetter("q_lora_rank")`, a lambda returning MLA) and names a `case` pattern captures from an MLA
    field or key. A probe of a name bound to a name of MLA (`FIELD = "q_lora_rank"`, `A = MLASelfAttention`)
    probes MLA, and so does its use as a key (`hf[FIELD]`, `FIELD in hf`); but a string constant bound to a name
    is a label, not an MLA value (`reason = "mla_mtp_disabled"`, a literal table of weight names): comparing it
    with constants (`reason == "binary_outdated"`) decides nothing, unless the label was chosen on MLA. Stores
    (`d[k] = ...`), slices (`kv[..., : cfg.kv_lora_rank]`), constant-key reads (`hf["kv_lora_rank"]`) and
    `and`/`or` of flags and conditions (`use = cfg.cache_mla_latents and ctx.is_decode_only()`) are no decisions
    by themselves.
    Nor are: a probe whose value is only rendered as text (in an f-string, `"%s" % ...`, `.format(...)`,
    `print(...)`, a logger's `info`/`warning`/... or `warnings.warn`: `print(f"rank={getattr(args,
    'q_lora_rank', None)}")` displays the field; a conditional expression there still chooses what is shown);
    a subscript whose key names types (`Union[TransformerConfig, MLATransformerConfig]`,
    `Provider[MLATransformerConfig]`, `cast(Optional[MLATransformerConfig], cfg)`: a constant key, as
    `hf["kv_lora_rank"]` is); arithmetic on sizes (`n * cfg.kv_lora_rank`) and formatting a switch
    (`"%d" % cfg.multi_latent_attention`). Decided: a config built with MLA values
    (`dataclasses.replace(cfg, multi_latent_attention=True)`, `MLATransformerConfig(q_lora_rank=...)`) and a flag
    forwarded under any name (`build(multi_latent_attention=cfg.multi_latent_attention)`) decide nothing here:
    the callee's test is the decision; a compatibility probe (`hasattr(config, "multi_latent_attention")`,
    `getattr(config, "<mla field>", default)` handed to a constructor) is one: its fallback is the non-MLA path.
    A function returning an MLA flag (`return "MLASelfAttention" in str(type(m))`) is no decision itself; a
    test of its call is.
    The finding points at the test expression.

    ## Why is this bad?
    Megatron-Core's MLA surface drifts every release (constructor arguments, RoPE ownership, config
    fields). Every MLA special case in generic builder code is a place an upstream bump can break, and a
    place a reviewer has to audit. Kept behind one adapter module (the seam), the bump touches the seam only.

    ## How to fix
    Move the decision into the adapter module and call it from the builder: `seamfix apply` does this for
    you, replacing the test by a predicate named after what it decides (`mla_seam.multi_latent_attention(config)`)
    and moving MLA-only arms into adapter functions. Calls into the adapter module are never flagged.

    ## Example
    ```python
    if self.position_embedding_type == "rope" and not self.config.multi_latent_attention:
        self.rotary_pos_emb = RotaryEmbedding(...)
    ```
    Use instead:
    ```python
    from megatron.core import mla_seam

    if self.position_embedding_type == "rope" and not mla_seam.multi_latent_attention(self.config):
        self.rotary_pos_emb = RotaryEmbedding(...)
    ```
    """

    code = "SEAM001"
    name = "mla-conditional"
    summary = "MLA-specific conditional outside the seam"

    VALID = (
        "if config.position_embedding_type == 'rope':\n    pass\n",
        "from megatron.core import mla_seam\nif mla_seam.multi_latent_attention(config):\n    pass\n",
        "from megatron.core.mla_seam import multi_latent_attention\nx = a if multi_latent_attention(cfg) else b\n",
        # A name with an MLA word that holds only the seam's answer (what `seamfix apply` writes for an alias)
        "from megatron.core import mla_seam\ndef f(cfg):\n    use_mla = mla_seam.multi_latent_attention(cfg)\n"
        "    if use_mla:\n        pass\n",
        # ... also when combined with values that are no MLA (apply routes only a definition's MLA atom)
        "from megatron.core import mla_seam\ndef f(self):\n    is_mla_provider = self.cls is not None and "
        "mla_seam.is_mla_provider(self.cls)\n    if is_mla_provider:\n        pass\n",
        "if config.rotary_scaling_factor > 1 and config.mscale_all_dim:\n    pass\n",
        # A loop copying fields, some of them MLA, asks about none by name; a key stripped, a sort key, readers
        # rebound or reading no MLA are no decisions.
        "def f(cfg, out):\n    for name in ('q_lora_rank', 'hidden_size'):\n"
        "        out[name] = getattr(cfg, name, None)\n",
        "def f(kwargs):\n    kwargs.pop('multi_latent_attention', None)\n    return build(**kwargs)\n",
        "def f(cfgs):\n    return sorted(cfgs, key=operator.attrgetter('kv_lora_rank'))\n",
        "def f(cfg):\n    get = attrgetter('multi_latent_attention')\n    get = attrgetter('hidden_size')\n"
        "    if get(cfg):\n        pass\n",
        "def f(cfg):\n    size = lambda c: c.hidden_size\n    if size(cfg):\n        pass\n",
        "def f(spec):\n    cls = MLASelfAttention\n    spec.module = cls\n    return spec\n",
        # Patterns on look-alikes and on fields that name no MLA decide nothing about MLA.
        "match cfg:\n    case TransformerConfig(rotary_scaling_factor=s, rope_type='yarn') if s > 1:\n        pass\n"
        "    case {'moe_latent_size': int()}:\n        pass\n",
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
        # Aliases are flow-sensitive: a later MLA assignment does not reach an earlier test; a kill ends it.
        "def f(cfg, flag):\n    if flag:\n        pass\n    flag = cfg.multi_latent_attention\n    return flag\n",
        "def f(cfg):\n    flag = cfg.multi_latent_attention\n    flag = other()\n    if flag:\n        pass\n",
        # The result of a call handed an MLA argument is the callee's, not MLA.
        "def f(cfg, x, n):\n    key = rope(x, mla_rotary_interleaved=cfg.multi_latent_attention)\n"
        "    if key.shape[0] != n:\n        pass\n",
        "def test_mla(mla_module, x):\n    output = mla_module(x)\n    assert output is not None\n",
        # ... also inline: an MLA keyword given a literal fixes the path; the test is on the call's result.
        "def test_kernel(run, q):\n    assert run(q, absorbed_mla=True, loss=0.0) is None\n",
        "if build_spec(multi_latent_attention=False) is None:\n    pass\n",
        # Stores, slices, constant-key reads and arithmetic on MLA sizes are not decisions.
        "config_kwargs['qk_head_dim'] = 64\n",
        "def f(cfg, d):\n    key = cfg.q_lora_rank\n    d[key] = 1\n",
        "def f(self, cache_kv):\n    return cache_kv[:, :, : self.kv_lora_rank]\n",
        "def f(self, x):\n    return x[..., self.config.qk_head_dim :]\n",
        "rank = hf_config['kv_lora_rank']\n",
        "def f(cfg, t):\n    rows = t.size(0) * cfg.kv_lora_rank\n    assert t.numel() == rows\n",
        # A lookup whose key comes from an MLA table is no probe of an MLA name.
        "def f(self, scaling, out):\n    for hf_key, key in self.MLA_ROPE_SCALING_MAPPING:\n"
        "        value = scaling.get(hf_key)\n        if value is not None:\n            out[key] = value\n",
        # A loop over literal rows binds each target from its own column: a label naming an MLA field is no value.
        "def f(chunk, v_dim):\n    for name, val in (('chunk_size', chunk), ('v_head_dim', v_dim)):\n"
        "        if val % 16:\n            return name\n",
        # Conditions combined into a flag are not a decision until the flag is tested.
        "def f(cfg, q):\n    absorbed = cfg.kv_lora_rank > 0 and q.size(-1) == 576\n    return absorbed\n",
        "def f(cfg, ctx):\n    use = cfg.cache_mla_latents and ctx and ctx.is_decode_only()\n    return use\n",
        "HAVE_SPARSE_MLA = HAVE_SPARSE_MLA_BWD and HAVE_SPARSE_MLA_FWD\n",
        # A function returning something built from MLA is not an MLA value; a parameter shadows a function.
        "def make(cfg):\n    return MLASelfAttention(cfg)\n"
        "def f(cfg):\n    m = make(cfg)\n    if m is None:\n        pass\n",
        "def latent(cfg):\n    return cfg.multi_latent_attention\ndef f(latent, x):\n    if latent(x):\n        pass\n",
        # ... nor is a sum of MLA sizes a function returns (``+=`` is arithmetic, as ``t = t + ...`` is)
        "def total(cfg):\n    t = 0\n    t += cfg.kv_lora_rank\n    return t\n"
        "def f(cfg):\n    if total(cfg) is None:\n        pass\n",
        # A decorator's settings are not a registration key; `self` aliases belong to their class.
        "@tilelang_jit(pass_configs=_SPARSE_MLA_PASS_CONFIGS)\ndef kernel():\n    pass\n",
        "@pytest.mark.parametrize('multi_latent_attention', [True, False])\ndef test_spec(multi_latent_attention):\n"
        "    build(multi_latent_attention=multi_latent_attention)\n",
        "class A:\n    def __init__(self, config):\n        self._latent = config.multi_latent_attention\n"
        "class B:\n    def f(self):\n        if self._latent:\n            pass\n",
        # State of a class that names MLA is the same whether or not a model uses MLA (MindSpeed-LLM's op).
        "class SparseFlashMlaFunction:\n    grad_scale = None\n    @staticmethod\n    def set(scale):\n"
        "        if SparseFlashMlaFunction.grad_scale is None:\n"
        "            SparseFlashMlaFunction.grad_scale = scale\n",
        "def f():\n    scale = SparseFlashMlaFunction.grad_scale\n    return scale if scale is not None else 1.0\n",
        # An annotation names a type; `Union[..., MLAKeyMapping]` is no dispatch (ChatLearn's mapper metadata).
        "@dataclass\nclass Layer:\n"
        "    attn: Union[SelfAttnMapping, MLASelfAttnMapping] = field(default=SelfAttnMapping)\n",
        "def f(cfg):\n    spec: dict[MLASelfAttention, int] = {}\n    return spec\n",
        # Second adversarial round. A type expression outside an annotation is no dispatch: its key is a
        # constant (a class), as `hf["kv_lora_rank"]` is; a generic base, `cast` and a type alias name a type.
        "ConfigT = Union[TransformerConfig, MLATransformerConfig]\n",
        "class DeepSeekProvider(ModelProvider[MLATransformerConfig]):\n    pass\n",
        "def f(cfg):\n    return cast(Optional[MLATransformerConfig], cfg)\n",
        "SpecMap = Dict[str, Type[MLASelfAttention]]\nLatent = MLASelfAttention\nspec = SPECS[Latent]\n",
        # A probe whose value is only rendered as text (an f-string, `.format`, `%`, a log or print call)
        # displays the field; it chooses nothing (a constructor given it still is a decision).
        "def f(args):\n    print(f\"> MLA: {getattr(args, 'multi_latent_attention', False)}\")\n",
        "def f(hf, logger):\n    logger.info('kv_lora_rank=%s', hf.get('kv_lora_rank'))\n",
        "def f(args):\n    print_rank_0('  mla ... {}'.format(getattr(args, 'multi_latent_attention', None)))\n",
        "def f(args):\n    return 'q_lora_rank=%s' % (getattr(args, 'q_lora_rank', None),)\n",
        # Formatting a switch, or converting it for a metric, is no arithmetic on it.
        "def f(cfg):\n    return 'use_mla=%d' % cfg.multi_latent_attention\n",
        "def f(args, writer):\n    writer.add_scalar('mla/enabled', float(args.multi_latent_attention), 0)\n",
        "def f(cfg, pos, scores):\n    return scores * (pos < cfg.qk_pos_emb_head_dim)\n",
        # Sizes added or multiplied stay sizes; `and`/`or` ending in a condition makes a flag.
        "def f(cfg):\n    total = cfg.kv_lora_rank * 2 + cfg.qk_head_dim\n    total += cfg.v_head_dim\n"
        "    return total\n",
        "def f(cfg):\n    latent = cfg.kv_lora_rank and cfg.kv_lora_rank > 0\n    return latent\n",
        "def f(self):\n    self.recompute_up = self.selective and 'mla_up_proj' in self.config.recompute_modules\n",
        "def f(cfg, rank):\n    rank = rank or cfg.hidden_size\n    return rank\n",
        # Third round (an independent held-out set). A table of MLA weight names (Megatron's dotted names,
        # DeepSeek's Hugging Face ones) is data; a dense weight name, LoRA targets and copying the Hugging Face
        # head dims are no MLA tests.
        "MLA_RENAMES = {'self_attention.linear_q_down_proj.weight': 'self_attn.q_a_proj.weight',\n"
        "               'self_attention.linear_kv_up_proj.weight': 'self_attn.kv_b_proj.weight'}\n",
        "def f(sd):\n    if 'decoder.layers.0.self_attention.linear_qkv.weight' in sd:\n        pass\n",
        "def f(name):\n    if 'q_proj' in name or 'lora_A' in name:\n        pass\n",
        "def f(args, hf):\n    args.qk_pos_emb_head_dim = hf.qk_rope_head_dim\n"
        "    args.qk_head_dim = hf.qk_nope_head_dim\n",
        # Fourth round (a second held-out set). Naming the FlashMLA backend among choices decides nothing; a named
        # table of backends is a registry (its keys are not followed), a literal one without MLA keys no MLA
        # lookup; a dispatcher registers the type of the first annotated parameter only, and an annotation under
        # any other decorator is a type hint.
        "def f(parser):\n    parser.add_argument('--attention-backend', choices=['flashmla', 'fa3'])\n",
        "BACKENDS = {'flashmla': FlashMLABackend, 'fa3': FA3Backend}\n\n\ndef f(name, runner):\n"
        "    return BACKENDS[name](runner)\n",
        "def f(config):\n    return {'eager': EagerAttention, 'sdpa': SdpaAttention}[config.attn_impl](config)\n",
        "@export.register\ndef _(module: SelfAttention, config: MLATransformerConfig):\n    pass\n",
        "@torch.no_grad()\ndef f(module: MLASelfAttention):\n    return module.linear_proj\n",
        # Large codebases full of near misses (2026-12-02). A string naming MLA stored as one label among others
        # (a status, a reason) is a constant, the same for every model: tests of the label decide nothing; the
        # test that chose to store it is the decision.
        "class Runner:\n    def fall_back(self, slow):\n        if slow:\n"
        "            self.reason = 'mla_mtp_disabled'\n\n    def outdated(self):\n"
        "        if self.reason == 'binary_outdated':\n            self.retry()\n",
        "def f(x):\n    reason = None\n    if x:\n        reason = 'mla_mtp_disabled'\n"
        "    if reason == 'binary_outdated':\n        pass\n",
        # A literal table whose rows hold MLA weight names among others is data; a lookup of a model type in it is
        # no MLA test.
        "PACKED = {'qwen3': {'qkv_proj': ['q_proj', 'k_proj']},\n"
        "          'deepseek_v2': {'fused_qkv_a_proj': ['q_a_proj', 'kv_a_proj_with_mqa']}}\n\n\n"
        "def f(model_type):\n    if model_type in PACKED:\n        return PACKED[model_type]\n",
    )
    INVALID = (
        Invalid("if config.multi_latent_attention:\n    pass\n", line=1),
        # ... while the column holding an MLA value still carries it
        Invalid(
            "def f(cfg):\n    for name, val in (('x', 1), ('mla', cfg.multi_latent_attention)):\n"
            "        if val:\n            return name\n",
            line=3,
        ),
        # ``|=`` combines flags: a function returning the combination returns an MLA value
        Invalid(
            "def latent(cfg):\n    flag = False\n    flag |= cfg.multi_latent_attention\n    return flag\n"
            "def g(cfg):\n    if latent(cfg):\n        pass\n",
            line=6,
        ),
        # The seam answers on one path only: the parameter reaches the test too
        Invalid(
            "from megatron.core import mla_seam\ndef f(cfg, use_mla):\n    if cfg.x:\n"
            "        use_mla = mla_seam.multi_latent_attention(cfg)\n    if use_mla:\n        pass\n",
            line=5,
        ),
        Invalid(
            "from megatron.core import mla_seam\ndef f(cfg):\n    use_mla = mla_seam.multi_latent_attention(cfg)\n"
            "    use_mla = cfg.flag\n    if use_mla:\n        pass\n",
            line=5,
        ),
        # The seam's answer combined with an MLA value of the builder's own: the builder still decides on MLA
        Invalid(
            "from megatron.core import mla_seam\ndef f(cfg):\n"
            "    use_mla = mla_seam.multi_latent_attention(cfg) or cfg.kv_lora_rank > 0\n"
            "    if use_mla:\n        pass\n",
            line=4,
        ),
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
        Invalid("match cfg:\n    case _ if cfg.q_lora_rank is not None:\n        pass\n", line=2),
        # A class or mapping pattern reading an MLA field or key: taken only where it is there, and as it is
        Invalid("match config:\n    case TransformerConfig(multi_latent_attention=True):\n        pass\n", line=2),
        Invalid("match config:\n    case TransformerConfig(kv_lora_rank=rank):\n        pass\n", line=2),
        Invalid("match hf:\n    case {'multi_latent_attention': True}:\n        pass\n", line=2),
        # ... and what it captures from the field holds its value: the guard and the body decide on it too
        Invalid(
            "match hf:\n    case {'kv_lora_rank': int() as rank} if rank > 0:\n        x = 1 if rank else 2\n",
            line=2,
            count=3,
        ),
        Invalid("match layer:\n    case Layer(config=Config(q_lora_rank=None)) | Dense():\n        pass\n", line=2),
        Invalid("x = cfg.multi_latent_attention and MLASelfAttention or SelfAttention\n", line=1),
        Invalid("attn = table[cfg.multi_latent_attention]\n", line=1),
        # ... also as the value of an annotated assignment
        Invalid("attn: type = table[cfg.multi_latent_attention]\n", line=1),
        Invalid("latents = getattr(self.config, 'cache_mla_latents', None)\n", line=1),
        Invalid("ok = hasattr(config, 'q_lora_rank')\n", line=1),
        Invalid("rank = hf_config.get('kv_lora_rank', None)\n", line=1),
        Invalid("rank = dict.get(hf_config, 'kv_lora_rank', None)\n", line=1),
        Invalid("flag = os.environ.get('USE_MLA')\n", line=1),
        Invalid("cfg_is_mla = isinstance(self.config, MLATransformerConfig)\nbuild(cfg_is_mla)\n", line=1),
        Invalid("if getattr(self.config, 'cache_mla_latents', None) and max_seqlen_q > 1:\n    pass\n", line=1),
        Invalid("if 'mla_up_proj' in self.recompute_modules:\n    pass\n", line=1),
        Invalid("if module in ('mla_up_proj', 'mla_down_proj'):\n    pass\n", line=1),
        Invalid("if self.cache_mla_latent:\n    pass\n", line=1),
        Invalid("if args.attention_type == '--multi-latent-attention':\n    pass\n", line=1),
        Invalid("def f(multi_latent_attention=False):\n    if multi_latent_attention:\n        pass\n", line=2),
        Invalid("def f(cfg):\n    use_mla = cfg.multi_latent_attention\n    if use_mla:\n        pass\n", line=3),
        # An MLA keyword given a variable names what that variable is: the test depends on it.
        Invalid("def f(run, q, flag):\n    if run(q, absorbed_mla=flag) is None:\n        pass\n", line=2),
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
        # Branches merge as "may be MLA"; a loop's next iteration sees what its body assigned.
        Invalid(
            "def f(cfg, a):\n    if a:\n        flag = cfg.multi_latent_attention\n    else:\n        flag = False\n"
            "    if flag:\n        pass\n",
            line=6,
        ),
        Invalid(
            "def f(layers):\n    flag = False\n    for layer in layers:\n        if flag:\n            pass\n"
            "        flag = layer.config.multi_latent_attention\n",
            line=4,
        ),
        # A closure and a module-level function see their scope's aliases whenever they run.
        Invalid(
            "def f(cfg):\n    use = cfg.multi_latent_attention\n    def g():\n        return 1 if use else 2\n", line=4
        ),
        Invalid("def f():\n    if USE:\n        pass\nUSE = cfg.multi_latent_attention\n", line=2),
        # An MLA flag stored on `self` under a neutral name in one method is MLA in the class's others.
        Invalid(
            "class A:\n    def __init__(self, config):\n        self._latent = config.multi_latent_attention\n"
            "    def forward(self, x):\n        if self._latent:\n            return x\n",
            line=5,
        ),
        Invalid(
            "class A:\n    def setup(self, config):\n        self.rank = config.q_lora_rank\n"
            "        self.has_q = self.rank is not None\n"
            "    def forward(self, x):\n        return self.q(x) if self.has_q else x\n",
            line=6,
        ),
        # A property, method or function that returns an MLA value: calling it reads that value.
        Invalid(
            "class A:\n    @property\n    def latent(self):\n        return self.config.multi_latent_attention\n"
            "    def forward(self, x):\n        if self.latent:\n            return x\n",
            line=6,
        ),
        Invalid(
            "class A:\n    def uses_latent(self):\n        return self._flag\n    def __init__(self, cfg):\n"
            "        self._flag = cfg.q_lora_rank is not None\n    def forward(self, x):\n"
            "        return self.q(x) if self.uses_latent() else x\n",
            line=7,
        ),
        Invalid(
            "def _latent(cfg):\n    return cfg.multi_latent_attention\n"
            "def build(cfg):\n    if _latent(cfg):\n        pass\n",
            line=4,
        ),
        # A test reads an alias through its own arithmetic, as it would read the field.
        Invalid("def f(cfg, tp):\n    q_split = cfg.q_lora_rank\n    assert q_split % tp == 0\n", line=3),
        # Conversions keep the value: `int(...)` of an MLA size is still that size.
        Invalid(
            "def f(config):\n    rank = int(getattr(config, 'kv_lora_rank', 0) or 0)\n"
            "    if rank <= 0:\n        raise ValueError\n",
            line=2,
            count=2,
        ),
        # A probe of a name bound to an MLA string (a constant, a loop over MLA fields) asks about that field.
        Invalid("FIELD = 'multi_latent_attention'\ndef f(cfg):\n    return getattr(cfg, FIELD, False)\n", line=3),
        Invalid(
            "def f(cfg):\n    for name in ('q_lora_rank', 'kv_lora_rank'):\n"
            "        if getattr(cfg, name, None) is None:\n            return name\n",
            line=3,
        ),
        Invalid(
            "LATENT_FIELDS = ('q_lora_rank', 'kv_lora_rank')\ndef f(cfg, out):\n    for name in LATENT_FIELDS:\n"
            "        out[name] = getattr(cfg, name, None)\n    return {k: getattr(cfg, k, 0) for k in LATENT_FIELDS}\n",
            line=4,
            count=2,
        ),
        # ... or bound to an MLA class (or a literal collection of them): an `isinstance` of it asks about it.
        Invalid("Attention = MLASelfAttention\ndef f(m):\n    if isinstance(m, Attention):\n        pass\n", line=3),
        Invalid(
            "from megatron.core.transformer.multi_latent_attention import MLASelfAttention as Latent\n"
            "def f(m):\n    return 1 if isinstance(m, Latent) else 2\n",
            line=3,
        ),
        Invalid(
            "LATENT = (MLASelfAttention, FusedMLASelfAttention)\nkept = [m for m in mods if isinstance(m, LATENT)]\n",
            line=2,
        ),
        # Readers of MLA made on the spot, called later: `attrgetter`/`itemgetter` of an MLA name, a lambda.
        Invalid(
            "def f(cfgs):\n    latent = operator.attrgetter('multi_latent_attention')\n"
            "    return [c for c in cfgs if latent(c)]\n",
            line=3,
        ),
        Invalid("latent = attrgetter('kv_lora_rank')\nkept = list(filter(latent, cfgs))\n", line=2),
        Invalid(
            "def f(cfg):\n    flag = itemgetter('multi_latent_attention')(cfg)\n    return 1 if flag else 2\n", line=3
        ),
        Invalid(
            "def f(cfg):\n    latent = lambda c: c.multi_latent_attention\n    if latent(cfg):\n        pass\n", line=3
        ),
        # `.pop` of an MLA key reads it, as `.get` does.
        Invalid(
            "def f(kwargs):\n    flag = kwargs.pop('multi_latent_attention', False)\n    if flag:\n        pass\n",
            line=3,
        ),
        # Decorators: a conditional, a registration keyed on an MLA class or string.
        Invalid("@(a if cfg.multi_latent_attention else b)\ndef f():\n    pass\n", line=1),
        Invalid("@register(MLASelfAttention)\ndef build(module):\n    pass\n", line=1),
        Invalid("class C:\n    @spec_for('mla')\n    def build(self):\n        pass\n", line=2),
        # A filter predicate keeps the MLA ones.
        Invalid("mla = list(filter(lambda c: c.multi_latent_attention, configs))\n", line=1),
        Invalid("rest = itertools.filterfalse(is_mla_layer, layers)\n", line=1),
        # EAFP probes: the read inside `try` is what `except AttributeError/KeyError` decides on.
        Invalid("try:\n    rank = args.q_lora_rank\nexcept AttributeError:\n    rank = None\n", line=2),
        Invalid("try:\n    rank = hf['kv_lora_rank']\nexcept (KeyError, TypeError):\n    rank = None\n", line=2),
        # A constant of a class that names MLA (an enum member) still names MLA; so does an MLA field of it.
        Invalid("def f(mode):\n    if mode is MLAMode.ABSORBED:\n        pass\n", line=2),
        Invalid("if MLATransformerConfig.q_lora_rank is None:\n    pass\n", line=1),
        # Second adversarial round. `or` falling back to a size selects a value, as `or 0` does.
        Invalid("def f(cfg):\n    q_dim = cfg.q_lora_rank or cfg.hidden_size\n    return q_dim\n", line=2),
        Invalid(
            "def f(cfg, x):\n    return x.view(-1, cfg.q_lora_rank and cfg.qk_head_dim or cfg.kv_channels)\n", line=2
        ),
        # Arithmetic on an MLA switch or an MLA condition is a conditional in disguise.
        Invalid("def f(config, n_heads):\n    return n_heads * (1 + config.multi_latent_attention)\n", line=2),
        Invalid("def f(cfg):\n    return int(cfg.multi_latent_attention) * cfg.qk_pos_emb_head_dim\n", line=2),
        Invalid("def f(cfg, n):\n    n += cfg.cache_mla_latents\n    return n\n", line=2),
        Invalid("def f(cfg, n):\n    return n * (cfg.q_lora_rank is not None) + 1\n", line=2),
        Invalid("def f(cfg, base):\n    return base + 64 * (not cfg.multi_latent_attention)\n", line=2),
        # A probe rendered as text is none (VALID above); its value handed to a function that is no logger
        # (`math.log`, a module's own `self.log`) or to a call inside a log call is used.
        Invalid("def f(cfg):\n    return math.log(getattr(cfg, 'kv_lora_rank', 1))\n", line=2),
        Invalid("def f(self, cfg):\n    self.log('rank', getattr(cfg, 'q_lora_rank', 0))\n", line=2),
        Invalid("def f(cfg, logger):\n    logger.info('%s', build(getattr(cfg, 'kv_lora_rank', 0)))\n", line=2),
        # `"<mla key>" in mapping` asks what `hasattr` and `.get` ask, also where it is only assigned.
        Invalid("def f(hf):\n    is_mla = 'kv_lora_rank' in hf\n    return is_mla\n", line=2),
        Invalid("def f(cfg):\n    return {'q_lora_rank': 1}.keys() if 'q_lora_rank' not in cfg else None\n", line=2),
        # A probe for an MLA submodule, or a weight name tested for one, asks whether the model is MLA.
        Invalid("def f(attn):\n    if hasattr(attn, 'linear_kv_down_proj'):\n        pass\n", line=2),
        Invalid("def f(name):\n    return 1 if 'linear_q_down_proj' in name else 2\n", line=2),
        # Third round. A dotted weight name whose component is an MLA submodule or field names it too.
        Invalid("def f(key):\n    if key.endswith('linear_q_down_proj.weight'):\n        pass\n", line=2),
        Invalid(
            "def f(sd):\n    if 'decoder.layers.0.self_attention.linear_kv_up_proj.weight' in sd:\n        pass\n",
            line=2,
        ),
        # DeepSeek's Hugging Face MLA weights (q_a_proj, kv_a_proj_with_mqa, kv_b_proj, ...) in checkpoint code.
        Invalid("def f(name):\n    if 'kv_a_proj_with_mqa' in name:\n        pass\n", line=2),
        Invalid("def f(hf_sd):\n    return [k for k in hf_sd if 'kv_b_proj' in k]\n", line=2),
        Invalid("def f(name):\n    return name.replace('q_a_proj', 'q') if 'q_a_proj' in name else name\n", line=2),
        # MindSpeed-LLM's flag (`--multi-head-latent-attention`), and DeepSeek's Hugging Face head dims.
        Invalid("def f(args):\n    if getattr(args, 'multi_head_latent_attention', False):\n        pass\n", line=2),
        Invalid("def f(args):\n    if args.multi_head_latent_attention:\n        pass\n", line=2),
        Invalid("def f(hf):\n    if hf.qk_rope_head_dim > 0:\n        pass\n", line=2),
        # Fourth round. FlashMLA written as one word, as inference engines name their MLA backend.
        Invalid("def f(backend):\n    if backend in ('flashmla', 'cutlass_mla'):\n        pass\n", line=2),
        Invalid("def f(selected):\n    return 64 if selected == _Backend.FLASHMLA else 16\n", line=2),
        # A computed key looked up in a literal table keyed by MLA picks its MLA entry, as a comparison would.
        Invalid("def f(config):\n    return {'mla': MLAAttention, 'mha': Attention}[config.attention_type]\n", line=2),
        Invalid("def f(kind):\n    return {'mla': 576, 'gqa': 128}.get(kind, 128)\n", line=2),
        # `functools.singledispatch` registers the annotation of the first annotated parameter.
        Invalid("@export.register\ndef _(module: MLASelfAttention, sd):\n    pass\n", line=1),
        Invalid(
            "class Exporter:\n    @export.register\n"
            "    def _(self, module: MLASelfAttention | FusedMLASelfAttention, sd):\n        pass\n",
            line=2,
        ),
        # Large codebases (2026-12-02). A weight-name fragment with its dots (`'.kv_b_proj'`,
        # `'.self_attn.q_a_proj.'`), and a private copy of an MLA field (`self._kv_lora_rank`), name MLA too.
        Invalid("def f(name):\n    if '.kv_b_proj' in name:\n        pass\n", line=2),
        Invalid("def f(name):\n    if '.self_attn.q_a_proj.' in name:\n        pass\n", line=2),
        Invalid("def f(self):\n    if self._kv_lora_rank is not None:\n        pass\n", line=2),
        # A name bound to an MLA string stands for it as a key, or compared with a value that is no constant.
        Invalid("KEY = 'q_lora_rank'\n\n\ndef f(hf):\n    if KEY in hf:\n        pass\n", line=5),
        Invalid("KIND = 'mla'\n\n\ndef f(cfg):\n    if cfg.attention_type == KIND:\n        pass\n", line=5),
        Invalid("FIELDS = ('q_lora_rank', 'kv_lora_rank')\n\n\ndef f(k):\n    if k in FIELDS:\n        pass\n", line=5),
        # A label chosen by an MLA value still carries it: `kind` re-encodes the flag.
        Invalid(
            "def f(cfg):\n    kind = 'mla' if cfg.multi_latent_attention else 'mha'\n    if kind == 'mha':\n"
            "        pass\n",
            line=2,
            count=2,
        ),
    )

    def check(self, source: SourceFile) -> Iterator[Hit]:
        return iter(decision_sites(source))
