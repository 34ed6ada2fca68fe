"""Which MLA decision forms `seamfix lint` flags, and what `seamfix apply` does with each of its findings.

Every form is a small builder (parameters the differential harness, `tests/codemods/equivalence.py`, knows how
to fill: `hf_config` a config read by key, `config` one read by attribute, `log` a side effect). For each, lint's
SEAM001 findings are compared with lint's findings after apply: a finding is *routed* (gone), *left* (still
there, and apply's summary names it with a reason) or *silent* (still there, and apply said nothing of it).
`tests/codemods/test_decision_forms.py` holds apply to: nothing silent, the reasons below for what is left, and
each form behaving the same before and after (executed under every config).

    python benchmarks/apply_decision_forms.py

prints the markdown table recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seamfix.codemods.context import Seam
from seamfix.codemods.project import Project
from seamfix.codemods.rewrite import FileRewrite, rewrite_file
from seamfix.config import Settings
from seamfix.engine import check_options
from seamfix.file_checker import FileChecker

_IF = "    if {}:\n        return log('mla')\n    return log('dense')\n"
FORMS = {
    # constant-key subscripts
    "subscript `if`": "def f(hf_config, log):\n" + _IF.format("hf_config['multi_latent_attention']"),
    "subscript `is None`": "def f(hf_config):\n    return 1 if hf_config['q_lora_rank'] is None else 2\n",
    "subscript `not`": "def f(hf_config, log):\n" + _IF.format("not hf_config['multi_latent_attention']"),
    "subscript `>` side effect": "def f(hf_config, log):\n" + _IF.format("hf_config['kv_lora_rank'] > log(0)"),
    "subscript in `and`": "def f(hf_config, log):\n" + _IF.format("log(1) and hf_config['multi_latent_attention']"),
    "subscript `while`": "def f(hf_config):\n    while hf_config['kv_lora_rank']:\n        return 1\n    return 0\n",
    "subscript `assert`": "def f(hf_config):\n    assert hf_config['multi_latent_attention'], 'needs MLA'\n",
    "nested subscript": (
        "def f(hf_config, log):\n" + _IF.format("{'model': hf_config}['model']['multi_latent_attention']")
    ),
    "subscript selects a value": (
        "def f(hf_config):\n    return hf_config['multi_latent_attention'] and 'latent' or 'full'\n"
    ),
    "subscript comprehension filter": (
        "def f(hf_config):\n    return [c for c in (hf_config, hf_config) if c['multi_latent_attention']]\n"
    ),
    "subscript `filter` lambda": (
        "def f(hf_config):\n    return list(filter(lambda c: c['multi_latent_attention'], [hf_config]))\n"
    ),
    "subscript `match` subject": (
        "def f(hf_config):\n    match hf_config['multi_latent_attention']:\n        case True:\n            return 1\n"
        "    return 0\n"
    ),
    "subscript `case` guard": (
        "def f(hf_config, x):\n    match x:\n        case 5 if hf_config['multi_latent_attention']:\n"
        "            return 1\n    return 0\n"
    ),
    "subscript dispatch": (
        "def f(hf_config):\n    return {True: 'mla', 1: 'one'}[hf_config['multi_latent_attention']]\n"
    ),
    "subscript `:=`": (
        "def f(hf_config):\n    if (m := hf_config['multi_latent_attention']):\n        return m\n    return 0\n"
    ),
    "tuple key": "def f(hf_config):\n    if hf_config['multi_latent_attention', 1]:\n        return 1\n    return 0\n",
    "subscript alias": (
        "def f(hf_config, log):\n    latent = hf_config['multi_latent_attention']\n" + _IF.format("latent")
    ),
    "subscript in `try`/`except KeyError`": (
        "def f(hf_config):\n    try:\n        r = hf_config['q_lora_rank']\n    except KeyError:\n        r = -1\n"
        "    return r\n"
    ),
    "key `in`": "def f(hf_config, log):\n" + _IF.format("'q_lora_rank' in hf_config"),
    # `.get` and other calls keyed by an MLA string
    "`.get` probe": "def f(hf_config):\n    return hf_config.get('kv_lora_rank')\n",
    "`.get` default": "def f(hf_config):\n    return hf_config.get('kv_lora_rank', 512)\n",
    "`.get` default with side effect": "def f(hf_config, log):\n    return hf_config.get('kv_lora_rank', log(512))\n",
    "`.get` `if`": "def f(hf_config, log):\n" + _IF.format("hf_config.get('multi_latent_attention')"),
    "`.get` default `if`": "def f(hf_config, log):\n" + _IF.format("hf_config.get('multi_latent_attention', False)"),
    "`.get` `is None`": "def f(hf_config, log):\n" + _IF.format("hf_config.get('q_lora_rank') is None"),
    "`.get` conditional expression": (
        "def f(hf_config):\n    return 1 if hf_config.get('multi_latent_attention', False) else 2\n"
    ),
    "`.get` side-effect default `if`": (
        "def f(hf_config, log):\n" + _IF.format("hf_config.get('multi_latent_attention', log(False))")
    ),
    "`.get` keyword default": "def f(hf_config, log):\n" + _IF.format("hf_config.get('q_lora_rank', default=0)"),
    "`.get` alias": (
        "def f(hf_config, log):\n    latent = hf_config.get('multi_latent_attention', False)\n" + _IF.format("latent")
    ),
    "`.get` `filter` lambda": (
        "def f(hf_config):\n    return list(filter(lambda c: c.get('multi_latent_attention'), [hf_config]))\n"
    ),
    "`dict.get`": "def f(hf_config, log):\n" + _IF.format("dict.get(hf_config, 'multi_latent_attention')"),
    "`dict.get` probe": "def f(hf_config):\n    return dict.get(hf_config, 'kv_lora_rank', 512)\n",
    "`.pop`": "def f(hf_config, log):\n" + _IF.format("dict(hf_config).pop('multi_latent_attention', None)"),
    # builtin probes and `try` probes
    "`getattr` probe": "def f(hf_config):\n    return getattr(hf_config, 'multi_latent_attention', False)\n",
    "`getattr` `if`": "def f(config, log):\n" + _IF.format("getattr(config, 'multi_latent_attention', False)"),
    "`getattr` `is not None`": "def f(config, log):\n" + _IF.format("getattr(config, 'q_lora_rank', None) is not None"),
    "`getattr` without default": "def f(hf_config, log):\n" + _IF.format("getattr(hf_config, 'q_lora_rank')"),
    "`hasattr`": "def f(config, log):\n" + _IF.format("hasattr(config, 'q_lora_rank')"),
    "attribute in `try`/`except AttributeError`": (
        "def f(config):\n    try:\n        r = config.q_lora_rank\n    except AttributeError:\n        r = -1\n"
        "    return r\n"
    ),
    # readers of MLA made on the spot
    "`attrgetter` in `filter`": (
        "import operator\n\n\ndef f(config):\n    latent = operator.attrgetter('multi_latent_attention')\n"
        "    return list(filter(latent, [config, config]))\n"
    ),
    "`attrgetter` called inline": (
        "import operator\n\n\ndef f(config, log):\n    flag = operator.attrgetter('multi_latent_attention')(config)\n"
        + _IF.format("flag")
    ),
    "`.pop` alias": (
        "def f(hf_config, log):\n    kw = dict(hf_config)\n    flag = kw.pop('multi_latent_attention', False)\n"
        + _IF.format("flag")
    ),
    # `match` on the config itself
    "`case _` guard": (
        "def f(config):\n    match config:\n        case _ if config.q_lora_rank is not None:\n            return 1\n"
        "    return 0\n"
    ),
    # what stays, with the reason apply gives
    "probe of a name bound to an MLA string": (
        "FIELD = 'q_lora_rank'\n\n\ndef f(config, log):\n" + _IF.format("getattr(config, FIELD, None) is None")
    ),
    "probe of a loop's MLA strings": (
        "def f(config, log):\n    for name in ('q_lora_rank', 'kv_lora_rank'):\n"
        "        if getattr(config, name, None) is None:\n            return log(name)\n    return log('all')\n"
    ),
    "probe in a loop over a named tuple of MLA fields": (
        "FIELDS = ('q_lora_rank', 'kv_lora_rank')\n\n\ndef f(config):\n"
        "    return {name: getattr(config, name, None) for name in FIELDS}\n"
    ),
    "`isinstance` of a name bound to an MLA class": (
        "class MLAConfig:\n    pass\n\n\nLatent = MLAConfig\n\n\ndef f(config, log):\n"
        + _IF.format("isinstance(config, Latent)")
    ),
    "`attrgetter` reader called": (
        "import operator\n\n\ndef f(config, log):\n    latent = operator.attrgetter('multi_latent_attention')\n"
        + _IF.format("latent(config)")
    ),
    "lambda reader called": "def f(config, log):\n    latent = lambda c: c.multi_latent_attention\n"
    + _IF.format("latent(config)"),
    "class pattern on MLA fields": (
        "def f(config):\n    match config:\n        case object(multi_latent_attention=True):\n            return 1\n"
        "        case object(q_lora_rank=rank):\n            return rank\n    return 0\n"
    ),
    "mapping pattern on an MLA key": (
        "def f(hf_config):\n    match hf_config:\n        case {'kv_lora_rank': int(rank)}:\n            return rank\n"
        "    return 0\n"
    ),
    "guard on a capture of an MLA key": (
        "def f(hf_config):\n    match hf_config:\n        case {'kv_lora_rank': int() as rank} if rank > 0:\n"
        "            return rank\n    return 0\n"
    ),
    "class pattern of an MLA class": (
        "class MLAConfig:\n    pass\n\n\ndef f(config):\n    match config:\n        case MLAConfig():\n"
        "            return 1\n    return 0\n"
    ),
    "key held by a module-level name": (
        "KEY = 'multi_latent_attention'\n\n\ndef f(hf_config, log):\n" + _IF.format("hf_config[KEY]")
    ),
    "f-string key": "def f(hf_config, x, log):\n" + _IF.format("hf_config[f'{x}multi_latent_attention'[1:]]"),
    "read looked up before a side-effect argument": (
        "def f(hf_config, log):\n" + _IF.format("dict.get(hf_config, 'q_lora_rank', log(None)) is None")
    ),
    # second adversarial round of lint (2026-12-02)
    "arithmetic on an MLA switch": "def f(config):\n    return 4 * (1 + config.multi_latent_attention)\n",
    "arithmetic on a converted switch": "def f(config):\n    return int(config.multi_latent_attention) * 64\n",
    "arithmetic on an MLA condition": "def f(config):\n    return 4 * (config.q_lora_rank is not None) + 1\n",
    "augmented arithmetic on a switch": (
        "def f(config):\n    n = 2\n    n += config.multi_latent_attention\n    return n\n"
    ),
    "`or` falling back to a size": "def f(config):\n    return config.q_lora_rank or config.hidden_size\n",
    "probe of an MLA submodule": "def f(config, log):\n" + _IF.format("hasattr(config, 'linear_kv_down_proj')"),
    "key `in` assigned": "def f(hf_config):\n    is_mla = 'kv_lora_rank' in hf_config\n    return is_mla\n",
    "weight name of an MLA submodule": "def f(hf_config, log):\n" + _IF.format("'linear_q_down_proj' in hf_config"),
    # third round
    "dotted weight name of an MLA submodule": (
        "def f(hf_config, log):\n" + _IF.format("'self_attention.linear_kv_up_proj.weight' in hf_config")
    ),
    "Hugging Face MLA weight name": "def f(hf_config, log):\n" + _IF.format("'kv_a_proj_with_mqa' in hf_config"),
    "MindSpeed-LLM's MLA switch": (
        "def f(config, log):\n" + _IF.format("getattr(config, 'multi_head_latent_attention', False)")
    ),
    # Fourth round: FlashMLA's one-word name, lookups in a literal table keyed by MLA, a dispatch annotation.
    "FlashMLA backend name": "def f(config, log):\n" + _IF.format("log('flashmla') in ('flashmla', 'cutlass_mla')"),
    "computed key into a table keyed by MLA": (
        "def f(log):\n    return {'mla': log(576), 'mha': log(128)}[log('mla')]\n"
    ),
    "`.get` from a table keyed by MLA": "def f(log):\n    return {'mla': 576, 'mha': 128}.get(log('mha'), 0)\n",
    "`register` keyed on an MLA annotation": (
        "import functools\n\n\nclass MLAConfig:\n    pass\n\n\n@functools.singledispatch\ndef f(config):\n"
        "    return 0\n\n\n@f.register\ndef _(config: MLAConfig):\n    return 1\n"
    ),
    # Large codebases (2026-12-02): a weight-name fragment written with its dots, as loaders match names.
    "weight-name fragment with its dots": "def f(hf_config, log):\n" + _IF.format("'.kv_b_proj' in hf_config"),
}

# The forms apply leaves, with part of the reason its summary gives (or of each reason, for several findings).
LEFT = {
    "key held by a module-level name": "`KEY` is a module-level variable",
    "f-string key": "names no MLA field, class or string itself",
    "read looked up before a side-effect argument": "routing it would change evaluation order",
    "probe of a name bound to an MLA string": "names no MLA field, class or string itself",
    "probe of a loop's MLA strings": "names no MLA field, class or string itself",
    "probe in a loop over a named tuple of MLA fields": "names no MLA field, class or string itself",
    "`isinstance` of a name bound to an MLA class": "names no MLA field, class or string itself",
    "`attrgetter` reader called": "names no MLA field, class or string itself",
    "lambda reader called": "names no MLA field, class or string itself",
    "class pattern on MLA fields": "a `case` pattern cannot call a predicate",
    "mapping pattern on an MLA key": "a `case` pattern cannot call a predicate",
    "class pattern of an MLA class": "a `case` pattern cannot call a predicate",
    "FlashMLA backend name": "alone is a name, not a decision",
    "computed key into a table keyed by MLA": "alone is a name, not a decision",
    "`.get` from a table keyed by MLA": "alone is a name, not a decision",
    "`register` keyed on an MLA annotation": "is the annotation that `register` dispatches on",
    "guard on a capture of an MLA key": (
        "a `case` pattern cannot call a predicate",
        "names no MLA field, class or string itself",
    ),
}


@dataclass
class Fate:
    findings: int
    routed: int = 0
    left: list[str] = field(default_factory=list)  # the reasons apply gives for findings that stay
    silent: list[str] = field(default_factory=list)  # findings that stay, of which apply says nothing
    rewrite: FileRewrite | None = None


def fate(source: str, checker: FileChecker) -> Fate:
    """Lint ``source``, apply to it, lint again: what became of each finding."""
    data = source.encode()
    before = _sites(checker, data)
    rewrite = rewrite_file(data, "case.py", checker, Seam(("mla_seam",)), Project(root=Path.cwd()))
    result = Fate(len(before), rewrite=rewrite)
    if rewrite.refused is not None:
        result.left = [f"file left: {rewrite.refused}"] * len(before)
        return result
    after = _sites(checker, rewrite.data)
    named = dict(entry.split(": ", 1) for entry in rewrite.left)
    result.routed = max(len(before) - len(after), 0)
    for finding in after:
        why = named.get(f"{finding.line}:{finding.column}")
        if why is None:
            result.silent.append(f"{finding.line}:{finding.column} {finding.message}")
        else:
            result.left.append(why)
    return result


def checker() -> FileChecker:
    return FileChecker(check_options(Settings(root=Path.cwd(), adapter="mla_seam.py")))


def _sites(checker: FileChecker, data: bytes):
    return [f for f in checker.check(data, "case.py") if f.code == "SEAM001"]


def main() -> None:
    files = checker()
    print("| form | lint findings | apply |")
    print("|---|---|---|")
    for name, source in FORMS.items():
        result = fate(source, files)
        said = [f"routed {result.routed}"] if result.routed else []
        said += [f"left: {why}" for why in result.left] + [f"**silent**: {what}" for what in result.silent]
        cell = "; ".join(said).replace("|", "\\|")
        print(f"| {name} | {result.findings} | {cell} |")


if __name__ == "__main__":
    main()
