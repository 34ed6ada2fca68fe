"""The MLA vocabulary: the data (``mla.toml``) and how a team's ``extend-vocabulary`` merges into it."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

CATEGORIES = ("words", "fields", "switches", "attributes", "classes", "modules", "strings", "flags", "not-mla")


@dataclass(frozen=True)
class Vocabulary:
    """Every MLA name seamfix knows, by category (see ``mla.toml`` for what each category means)."""

    words: frozenset[str]
    fields: frozenset[str]
    switches: frozenset[str]
    attributes: frozenset[str]
    classes: frozenset[str]
    modules: frozenset[str]
    strings: frozenset[str]
    flags: frozenset[str]
    not_mla: frozenset[str]

    @classmethod
    def from_table(cls, table: dict[str, list[str]]) -> Vocabulary:
        return cls(**{_attr(key): frozenset(table.get(key, ())) for key in CATEGORIES})

    def extended(self, table: dict[str, list[str]]) -> Vocabulary:
        """This vocabulary plus a validated ``extend-vocabulary`` table (same keys as ``mla.toml``)."""
        return replace(
            self,
            **{_attr(key): getattr(self, _attr(key)) | frozenset(table.get(key, ())) for key in CATEGORIES},
        )

    def fingerprint(self) -> str:
        data = {f.name: sorted(getattr(self, f.name)) for f in fields(self)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _attr(key: str) -> str:
    return key.replace("-", "_")


def default_vocabulary() -> Vocabulary:
    text = (Path(__file__).parent / "mla.toml").read_text(encoding="utf-8")
    return Vocabulary.from_table(tomllib.loads(text))
