"""Where a test reads a local alias of MLA (``use_mla = cfg.multi_latent_attention`` ... ``if use_mla:``), the
alias's definitions are what to route: routing the test (``mla_seam.enabled(use_mla)``) would leave the
builder reading ``cfg.multi_latent_attention``.

The linter's aliases are flow-sensitive; this module asks their order-blind superset
(``MLAExpressions.aliases``): a name is an alias in a function when any assignment there (or in an
enclosing function or the module) gives it a value that carries MLA or another alias. So once every such
value of the alias is a call into the seam, the name is no alias anywhere in the function, and neither its
test nor its other reads are findings. This module answers, on ``ast`` and the bindings alone (before
LibCST positions exist, so that the focus module can keep the definitions), which assigned values those
are; the linter's own alias sets keep the two in agreement.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from seamfix.analysis.expressions import MLAExpressions, own_statements
from seamfix.analysis.seam_bindings import SeamBindings
from seamfix.codemods.bindings import Bindings, Frame, Occurrence
from seamfix.codemods.context import Seam
from seamfix.vocabulary.names import NameClassifier

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_ALIAS_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)  # where the linter finds aliases


class AliasDefinitions:
    """The assigned values to route for a test that reads an alias, by the position of the alias's name."""

    def __init__(self, bindings: Bindings, mla: MLAExpressions, has_walrus: bool) -> None:
        self.bindings = bindings
        self.mla = mla
        self._walrus = (lambda node: True) if has_walrus else None  # as the linter, but on every statement
        self._aliases: dict[Frame, frozenset[str]] = {}
        self._plain: dict[Frame, dict[str, list[ast.expr]]] = {}
        self._found: dict[tuple[int, int], list[ast.expr] | None] = {}

    @classmethod
    def of_file(cls, tree: ast.Module, text: str, package: tuple[str, ...], bindings: Bindings, names: NameClassifier,
                seam: Seam) -> AliasDefinitions:  # fmt: skip
        """For one file of the package ``package``, with MLA judged as the linter's rule judges it there."""
        seam_bindings = SeamBindings(seam.parts, package)
        if seam.name in text:  # as the linter: only a file that names the adapter can call into it
            seam_bindings.collect(tree)
        return cls(bindings, MLAExpressions(names, seam_bindings), ":=" in text)

    def lines(self, atoms: Iterable[tuple[int, int, int, int]]) -> list[int]:
        """The first lines of the values to route for findings whose MLA atom (1-based columns) is a bare
        name: the focus module must keep their statements."""
        found = []
        for line, column, end_line, end_column in atoms:
            occurrence = self.bindings.at(line, column - 1)
            node = occurrence.node if occurrence is not None else None
            if isinstance(node, ast.Name) and self._ends_at(node, end_line, end_column - 1):
                found += [value.lineno for value in self.values(line, column - 1) or ()]
        return found

    def _ends_at(self, node: ast.expr, line: int, column: int) -> bool:
        return node.end_lineno == line and self.bindings.column(line, node.end_col_offset) == column

    def values(self, line: int, column: int) -> list[ast.expr] | None:
        """The values assigned to the local variable whose name is read at ``line``:``column`` (the variable
        first, then the aliases its values read); None when its definitions cannot be routed instead.

        They cannot when something else binds the name (a parameter, a loop, ``with`` or ``except`` target,
        tuple unpacking, augmented assignment, ``:=``, ``global``/``nonlocal``, a nested function assigning
        it), when it belongs to an enclosing function (a nested function reading it would route another
        function's code), or when the linter inherits it as an alias from an enclosing scope: these keep the
        routed test, where the seam says what the flag means."""
        key = (line, column)
        if key not in self._found:
            self._found[key] = self._resolve(line, column)
        return self._found[key]

    def _resolve(self, line: int, column: int) -> list[ast.expr] | None:
        occurrence = self.bindings.at(line, column)
        if occurrence is None or occurrence.kind != "name" or not _read_by_owner(occurrence):
            return None
        function = occurrence.owner
        if not isinstance(function.node, _FUNCTIONS):
            return None
        values: list[ast.expr] = []
        return values if self._collect(function, occurrence.name, values, set()) else None

    def _collect(self, function: Frame, name: str, values: list[ast.expr], seen: set[str]) -> bool:
        """Add the values of ``name`` and of the aliases they read; False when one of those cannot be routed."""
        if name in seen:
            return True
        seen.add(name)
        assigned = self._plain_assignments(function).get(name, [])
        stores = [o for o in self.bindings.owned_by(function) if o.name == name and _binds(o.node)]
        if len(stores) != len(assigned) or name in self._inherited(function):
            return False
        values += assigned
        aliases = self._aliases_in(function)
        for value in assigned:
            for read in _names(value):
                if read.id not in aliases:
                    continue
                # An alias named for MLA (`use_mla`) stays a finding by its name: the value routes it to the
                # seam's `enabled`, and its own definitions route where they can. Any other alias must route.
                owned = self.bindings.owner(read) is function
                if self.mla.names.is_name(read.id):
                    attempt: list[ast.expr] = []
                    trial = set(seen)  # a failed attempt must not mark the aliases it met as done
                    if owned and self._collect(function, read.id, attempt, trial):
                        values += attempt
                        seen |= trial
                elif not (owned and self._collect(function, read.id, values, seen)):
                    return False
        return True

    def _plain_assignments(self, function: Frame) -> dict[str, list[ast.expr]]:
        """``name = value`` and ``name: T = value`` of ``function`` outside nested scopes, by name: each target
        name with the value it gets (``a = b = value`` gives both)."""
        if function not in self._plain:
            found: dict[str, list[ast.expr]] = {}
            for statement in own_statements(function.node):
                if isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets):
                    for target in statement.targets:
                        found.setdefault(target.id, []).append(statement.value)
                elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                    if isinstance(statement.target, ast.Name):
                        found.setdefault(statement.target.id, []).append(statement.value)
            self._plain[function] = found
        return self._plain[function]

    def _aliases_in(self, frame: Frame) -> frozenset[str]:
        """The linter's aliases in ``frame``: its own and those inherited from enclosing scopes."""
        if frame not in self._aliases:
            inherited = self._inherited(frame)
            if isinstance(frame.node, _ALIAS_SCOPES):
                inherited = self.mla.aliases(frame.node, inherited, self._walrus)
            self._aliases[frame] = inherited
        return self._aliases[frame]

    def _inherited(self, frame: Frame) -> frozenset[str]:
        return self._aliases_in(frame.parent) if frame.parent is not None else frozenset()


def _read_by_owner(occurrence: Occurrence) -> bool:
    """Is the name read in its owner's own code (comprehensions included), not in a nested function?"""
    frame = occurrence.frame
    while frame is not occurrence.owner and frame.is_comprehension:
        frame = frame.parent
    return frame is occurrence.owner


def _binds(node: ast.AST) -> bool:
    """Whether an identifier of the bindings binds its name rather than reads it."""
    return not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load)


def _names(value: ast.expr) -> Iterator[ast.Name]:
    return (node for node in ast.walk(value) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load))
