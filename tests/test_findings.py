"""A finding's kind is a `FindingKind` wherever it comes from: the rule, or the cache (which stores plain values)."""

from pathlib import Path

from seamfix.config import load_settings
from seamfix.engine import lint
from seamfix.findings import FindingKind
from seamfix.lint_rules import RULES

SOURCE = """\
def f(cfg, args, layers):
    if cfg.multi_latent_attention:
        pass
    try:
        rank = args.q_lora_rank
    except AttributeError:
        rank = None
    return rank, list(filter(lambda c: c.multi_latent_attention, layers))
"""
KINDS = [FindingKind.IF_TEST, FindingKind.TRY_PROBE, FindingKind.FILTER_PREDICATE]


def kinds(root: Path, use_cache: bool) -> list[FindingKind]:
    result = lint([root], load_settings(root), cwd=root, use_cache=use_cache, jobs=1)
    return [finding.kind for finding in result.findings]


def test_kinds_are_typed_and_survive_the_cache(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.seamfix]\n")
    (tmp_path / "builder.py").write_text(SOURCE)
    for use_cache in (False, True, True):  # computed; computed and stored; read back from the cache
        found = kinds(tmp_path, use_cache)
        assert found == KINDS and all(type(kind) is FindingKind for kind in found)
    assert list(tmp_path.joinpath(".seamfix_cache").glob("lint-*.bin"))
    # StrEnum: the codemods' string comparisons keep working.
    assert FindingKind.IF_TEST == "if-test" and f"{FindingKind.PROBE}" == "probe"


def test_every_seam001_sample_finding_has_a_kind():
    from seamfix.config import Settings
    from seamfix.engine import lint_source

    settings = Settings(root=Path.cwd(), adapter="megatron/core/mla_seam.py", codes=frozenset({"SEAM001"}))
    for sample in RULES["SEAM001"].INVALID:
        for finding in (f for f in lint_source(sample.source, settings) if f.code == "SEAM001"):
            assert finding.kind is not FindingKind.OTHER and finding.atom is not None, finding
