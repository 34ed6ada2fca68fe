"""Deciding whether one identifier, attribute or string names MLA, by the vocabulary's rules."""

from __future__ import annotations

import re
from functools import lru_cache

from seamfix.vocabulary import Vocabulary

# Acronym-aware camelCase split: "FusedMLASelfAttention" -> Fused, MLA, Self, Attention.
_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_IDENTIFIER_LIKE = re.compile(r"-{0,2}[A-Za-z_][A-Za-z0-9_.\-]*")


def identifier_words(identifier: str) -> list[str]:
    """The lower-cased words of a snake_case / camelCase / dotted identifier."""
    return [word.lower() for part in re.split(r"[_.\-]+", identifier) for word in _CAMEL_WORD.findall(part)]


class NameClassifier:
    """Answers "is this name MLA?" for each syntactic position, memoized per name."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._string_values = (
            vocabulary.fields
            | vocabulary.attributes
            | vocabulary.classes
            | vocabulary.modules
            | vocabulary.strings
            | {_flag_field(flag) for flag in vocabulary.flags}
        )
        self.is_name = lru_cache(maxsize=None)(self._is_name)
        self.is_attribute = lru_cache(maxsize=None)(self._is_attribute)
        self.is_string = lru_cache(maxsize=None)(self._is_string)
        self.is_class = lru_cache(maxsize=None)(self._is_class)
        self.is_module = lru_cache(maxsize=None)(self._is_module)

    def is_switch(self, name: str) -> bool:
        """A field that holds a bool (``multi_latent_attention``): arithmetic on it is a conditional."""
        return name in self.vocabulary.switches and name not in self.vocabulary.not_mla

    def has_mla_word(self, identifier: str) -> bool:
        return not self.vocabulary.words.isdisjoint(identifier_words(identifier))

    def _is_name(self, name: str) -> bool:
        """A bare identifier: a variable, parameter, function or class name; a private copy of a field names it
        too (``self._kv_lora_rank``, a cached ``kv_lora_rank``)."""
        public = name.lstrip("_")
        if name in self.vocabulary.not_mla or public in self.vocabulary.not_mla:
            return False
        return public in self.vocabulary.fields or name in self.vocabulary.classes or self.has_mla_word(name)

    def _is_attribute(self, attr: str) -> bool:
        """The name after a dot: ``config.<attr>``, or its private copy (``self._v_head_dim``)."""
        return attr.lstrip("_") in self.vocabulary.attributes or self.is_name(attr)

    def _is_string(self, value: str) -> bool:
        """A string constant: a field name for getattr, a recompute module, a CLI flag, a class name."""
        value = value.strip(".")  # a fragment of a weight name: `".kv_b_proj" in name`, `".self_attn.q_a_proj."`
        if len(value) > 80 or not _IDENTIFIER_LIKE.fullmatch(value):
            return False
        normalized = _flag_field(value)
        if normalized in self.vocabulary.not_mla:
            return False
        if value in self._string_values or normalized in self._string_values or self.has_mla_word(normalized):
            return True
        # A dotted weight name names MLA by a component (`self_attention.linear_kv_down_proj.weight`)
        return "." in value and any(
            part in self._string_values and part not in self.vocabulary.not_mla for part in value.split(".")
        )

    def _is_class(self, name: str) -> bool:
        """A class name: listed, or a CapWords name with an MLA word (``FusedMLASelfAttention``, ``MLA``). Not a
        constant in PEP 8's UPPER_CASE (``V4_FLASHMLA_D_NOPE``, a kernel's tile size): a value, not a class."""
        if name in self.vocabulary.not_mla:
            return False
        if name in self.vocabulary.classes:
            return True
        return name[:1].isupper() and not _is_constant(name) and self.has_mla_word(name)

    def _is_module(self, dotted: str) -> bool:
        return any(
            dotted == module or dotted.startswith(module + ".") for module in self.vocabulary.modules
        ) or self.has_mla_word(dotted.rsplit(".", 1)[-1])

    def anchors(self) -> list[bytes]:
        """Lower-case byte strings of which every MLA name contains at least one (for the prefilter)."""
        tokens = {word for word in self.vocabulary.words}
        for name in self.vocabulary.fields | self.vocabulary.attributes | self.vocabulary.strings:
            tokens.add(name.lower())
        tokens |= {name.lower() for name in self.vocabulary.classes}
        tokens |= {module.rsplit(".", 1)[-1].lower() for module in self.vocabulary.modules}
        tokens |= {flag.lstrip("-").lower() for flag in self.vocabulary.flags}
        minimal = []
        for token in sorted(tokens, key=len):
            if token and not any(kept in token for kept in minimal):
                minimal.append(token)
        return [token.encode() for token in sorted(minimal)]


def _is_constant(name: str) -> bool:
    """PEP 8's name of a constant: upper case words joined by underscores (``FLASHMLA_TILE_SIZE``)."""
    return name.isupper() and "_" in name.strip("_")


def _flag_field(value: str) -> str:
    return value.lstrip("-").replace("-", "_")
