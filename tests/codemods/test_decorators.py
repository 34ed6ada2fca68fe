"""Which decorated definitions apply leaves alone (`codemods/decorators.py`): those a decorator may compile
from source. The standard library's decorators, builtins, known runtime wrappers and the project's own that read
no source run the function as written; another package's decorator, or one apply cannot follow, may not."""

from __future__ import annotations

import ast
import textwrap

from seamfix.codemods.decorators import Decorators

HELPERS = ast.parse("import inspect\ndef plain(f):\n    return f\ndef lowers(f):\n    return inspect.getsource(f)\n")
HELPERS.is_package = False
MODULE = textwrap.dedent(
    """
    import functools
    import attrs
    import torch
    import cutlass.cute as cute
    import kerneldsl
    from megatron.core.utils import internal_api
    from pkg.helpers import plain, lowers
    from pkg import helpers

    no_grad = torch.no_grad()
    fuse: object = torch.jit.script

    @functools.singledispatch
    def width(value): ...
    @width.register
    def _(value: int): ...

    class Registry:
        def register(self, name):
            return lambda f: f

    REGISTRY = Registry()

    @REGISTRY.register("mla")
    def registered(): ...

    @attrs.define
    class Layer:
        @property
        def width(self): ...
        @width.setter
        def width(self, value): ...
        @functools.lru_cache
        def cached(self): ...

    @torch.no_grad()
    def run_no_grad(): ...
    @internal_api
    def run_megatron_wrapped(): ...
    @no_grad
    def run_bound_no_grad(): ...
    @plain
    def run_plain(): ...
    @helpers.plain
    def run_module_plain(): ...
    @cute.kernel
    def compiled_cute(): ...
    @fuse
    def compiled_by_alias(): ...
    @kerneldsl.lower(opt=3)
    def compiled_other_package(): ...
    @lowers
    def compiled_reads_source(): ...
    @helpers.lowers
    def compiled_module_reads_source(): ...
    def outer(decorator):
        @decorator
        def compiled_by_parameter(): ...
    """
)


CALLS = textwrap.dedent(
    """
    import functools
    import numba
    import torch

    def scale(x): ...
    def kernel(x): ...
    def traced(x): ...
    def plain(x): ...

    scaled = torch.jit.script(scale)
    fast = numba.njit(cache=True)(kernel)
    compiled = torch.compile(traced)
    bound = functools.partial(plain, 1)
    """
)


def test_functions_handed_to_a_compiler_by_name_leave_their_code() -> None:
    compiled = Decorators(ast.parse(CALLS), "pkg.model", ("pkg",), {}.get).compiled_by_call()
    assert {why.split("`")[1] for _, _, why in compiled} == {"scale", "kernel"}


def test_only_decorators_that_may_compile_from_source_leave_their_code() -> None:
    tree = ast.parse(MODULE)
    projects = {"pkg.helpers": HELPERS}
    compiled = Decorators(tree, "pkg.model", ("pkg",), projects.get).compiled()
    names = {why.split("`")[1] for _, _, why in compiled}
    assert names == {
        "compiled_cute", "compiled_by_alias", "compiled_other_package", "compiled_reads_source",
        "compiled_module_reads_source", "compiled_by_parameter",
    }  # fmt: skip
