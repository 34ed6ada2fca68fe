"""Which keyword arguments a megatron-core function or constructor takes, read off its signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable


def keywords_accepted(target: Callable) -> frozenset[str]:
    """Names ``target`` accepts as keywords; for a class, those of its constructor chain.

    A constructor that only forwards ``**kwargs`` accepts what the next constructor up its MRO accepts.
    """
    if not inspect.isclass(target):
        return _named_parameters(inspect.signature(target))[0]
    names: set[str] = set()
    for cls in target.__mro__:
        if "__init__" not in vars(cls):
            continue
        own, forwards_the_rest = _named_parameters(inspect.signature(cls.__init__))
        names |= own - {"self"}
        if not forwards_the_rest:
            break
    return frozenset(names)


def _named_parameters(signature: inspect.Signature) -> tuple[frozenset[str], bool]:
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = signature.parameters.values()
    names = frozenset(p.name for p in parameters if p.kind in by_name)
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
