"""Which names of a file refer to the adapter module (the seam), and the absolute module of an import."""

from __future__ import annotations

import ast


class SeamBindings:
    """Local names that refer to the adapter module (the seam) or to functions defined in it."""

    def __init__(self, adapter_parts: tuple[str, ...], package_parts: tuple[str, ...]) -> None:
        self._adapter_parts = adapter_parts
        self._package_parts = package_parts
        self.modules: set[str] = set()
        self.functions: set[str] = set()
        self.dotted_modules: set[str] = set()

    def is_adapter_module(self, dotted: str) -> bool:
        parts = tuple(dotted.split("."))
        return bool(self._adapter_parts) and self._adapter_parts[-len(parts) :] == parts

    def collect(self, tree: ast.Module) -> SeamBindings:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if self.is_adapter_module(alias.name):
                        if alias.asname:
                            self.modules.add(alias.asname)
                        else:
                            self.dotted_modules.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                module = self.resolve(node)
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if self.is_adapter_module(f"{module}.{alias.name}" if module else alias.name):
                        self.modules.add(bound)
                    elif module and self.is_adapter_module(module):
                        self.functions.add(bound)
        return self

    def resolve(self, node: ast.ImportFrom) -> str:
        """The absolute module of ``from ... import``, resolving relative levels against the file's package."""
        return absolute_module(self._package_parts, node.level, node.module)

    def refers_to_seam(self, node: ast.expr) -> bool:
        """``mla_seam.multi_latent_attention`` / ``multi_latent_attention`` /
        ``pkg.mla_seam.multi_latent_attention`` when bound to the adapter."""
        dotted = dotted_name(node) if isinstance(node, (ast.Name, ast.Attribute)) else None
        return dotted is not None and self.names_seam(dotted)

    def names_seam(self, dotted: str) -> bool:
        """Whether the dotted name ``a.b.c`` read in this file is the adapter module or a name in it (what
        ``refers_to_seam`` asks of ``ast``, and ``seamfix apply`` of LibCST nodes)."""
        head, dot, _ = dotted.partition(".")
        if not dot:
            return dotted in self.functions or dotted in self.modules
        return head in self.modules or any(
            dotted == module or dotted.startswith(module + ".") for module in self.dotted_modules
        )


def dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def absolute_module(package_parts: tuple[str, ...], level: int, module: str | None) -> str:
    """The module ``from <level dots><module> import`` names in a file of the package ``package_parts``
    (its import name counted from the source roots, ruff's ``src``): ``..x`` in ``pkg.sub`` is ``pkg.x``."""
    if not level:
        return module or ""
    base = package_parts[: len(package_parts) - level + 1]
    return ".".join((*base, module) if module else base)
