"""What the codemods must know about the whole project, not one file: import names from the source roots
(ruff's ``src``), which names tests patch, and which names other modules import from a builder.

The adapter may re-import a builder's global only when the builder's binding cannot differ from a fresh
import of its source (see ``shared_globals``); a patch (``mock.patch("pkg.mod.Name")``,
``monkeypatch.setattr(mod, "Name", ...)``) or a re-export makes it differ, so both are collected here, by a
text scan of every Python file under the project root, tests included (they are where patches live).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from seamfix.analysis.seam_bindings import absolute_module
from seamfix.codemods.bindings import top_level_names
from seamfix.codemods.package_init import PackageInit, seam_inits
from seamfix.config import DEFAULT_EXCLUDE, Settings, module_parts, package_parts

# `patch("pkg.mod.Name")`, `mocker.patch(target=f"{MODULE}.Name")`, `monkeypatch.setattr("pkg.mod.Name", value)`,
# `monkeypatch.delattr("pkg.mod.Name")`, `patch("pkg.mod." "Name")`: where a target's string literals start
# (`_patched_names` joins them)
_PATCHED_PATH = re.compile(r"""(?:patch|setattr|delattr)\(\s*(?:target\s*=\s*)?(?=[rRbBuUfF]{0,2}["'])""")
_STRING_LITERAL = re.compile(r"""\s*[rRbBuUfF]{0,2}(["'])((?:\\.|(?!\1)[^\\\n])*)\1""")
# `patch.object(mod, "Name")`, `monkeypatch.setattr(mod, "Name", value)`, `setattr(mod, "Name", v)`, `delattr`,
# `object.__setattr__(mod, "Name", v)`, `patch.object(target=mod, attribute="Name")` (group 2)
_PATCHED_ATTRIBUTE = re.compile(
    r"""(?:setattr|delattr|__setattr__|__delattr__|patch\.object|patch\.multiple)\(\s*[^,()]+,\s*["'](\w+)["']|"""
    r"""\battribute\s*=\s*["'](\w+)["']"""
)
# `patch.multiple("pkg.mod", Name=fake)`, `patch.multiple(mod, Name=fake)`: each keyword names a patched global
_PATCHED_KEYWORDS = re.compile(r"patch\.multiple\(")
_KEYWORD = re.compile(r"(?<![\w.])(\w+)\s*=(?!=)")
_NESTED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}|\"[^\"\n]*\"|'[^'\n]*'")
_MULTIPLE_OPTIONS = frozenset({"spec", "create", "spec_set", "autospec", "new_callable"})
# `module.Name = fake`, `module.Name += 1` (a test's or a runtime patch's assignment; `self.x`/`cls.x` are no
# modules): the source module of a builder's import patched so, the adapter's import would see what the builder
# did not; a builder's own global rebound so while a moved arm runs, the value passed to it would be the old one
_ASSIGNED_ATTRIBUTE = re.compile(
    r"^[ \t]*(?!self\.|cls\.)[A-Za-z_]\w*(?:\.\w+)*\.(\w+)[ \t]*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)", re.MULTILINE
)
# `.Name` followed by `,` or `=` anywhere: where a tuple, chained or one-line assignment may set a module's `Name`
# (`old, mod.Name = mod.Name, fake`, `a = mod.Name = fake`, `if x: mod.Name = fake`); the file's syntax tree
# tells, when a builder's global of that name matters
_MAYBE_STORED_ATTRIBUTE = re.compile(r"\.(\w+)[ \t]*(?:,|=(?!=))")
# `importlib.reload(pkg.mla_impl)`, `reload(mla_impl)`: the module run again, every name it binds a new object
_RELOADED = re.compile(r"(?:\bimportlib\.|(?<![\w.]))reload\(\s*([A-Za-z_][\w.]*)\s*[,)]")
# `sys.modules["pkg.mla_impl"] = stub`, `mock.patch.dict(sys.modules, {"pkg.mla_impl": stub})`,
# `monkeypatch.setitem(sys.modules, ...)`, `sys.modules.pop(...)`: an import of that module may then give
# another module object (a stub while a builder was imported, a fresh one after), whose names differ
_MODULES_CHANGED = re.compile(
    r"modules\s*\[|modules\.(?:update|setdefault|pop|__setitem__|__delitem__)\(|"
    r"(?:patch\.dict|setitem|delitem)\(\s*(?:\w+\.)*modules\b"
)
_MODULE_NAME_LITERAL = re.compile(r"""[rRbBuU]?["']([A-Za-z_]\w*(?:\.\w+)*)["']""")
# a patch target whose last part is computed (`f"{MODULE}.{name}"`): any global of any module may be patched
_ANY_NAME = "*"
_FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.MULTILINE)
# `import pkg.model as m`, `from pkg import model as m`: the module read under another name
_MODULE_ALIAS = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\w+)|import[ \t]+([\w.]+))[ \t]+as[ \t]+(\w+)", re.MULTILINE
)
# `importlib.import_module("pkg.model")`, `__import__("pkg.model")`, `sys.modules["pkg.model"]`: the module
# object reached by its name as a string, every name it binds readable from it
_MODULE_BY_NAME = re.compile(r"""(?:import_module\(|__import__\(|modules\[)\s*[rbu]?["'](\.*[\w.]+)["']""")
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n]*)", re.MULTILINE)
# an attribute set by a computed name (`setattr(module, name, value)`, not `setattr(x, "name", value)`) or through
# a namespace (`vars(module)[name] = value`, `module.__dict__.update(...)`, the namespace kept in a variable or
# handed to a call: `exec(code, vars(module))`): each spelling with the word it needs (searched for first: a regular
# expression over every file costs), group 1 the target
_NAMESPACE_STORED = (
    r"""(?=[ \t]*\[[^\]\n]*\][ \t]*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)|\.(?:update|setdefault|pop|clear)\(|"""
    r"""[ \t]*$|[ \t]*[,)])"""
)
_SET_BY_NAME = re.compile(r"""\b(?:setattr|delattr)\(\s*([^,()]+(?:\([^()]*\))?[^,()]*?)\s*,(?!\s*[rRbBuU]?["'])""")
_VARS_STORED = re.compile(rf"""\bvars\(\s*([^()\n]*(?:\([^()\n]*\))?[^()\n]*?)\s*\){_NAMESPACE_STORED}""", re.MULTILINE)
_DICT_STORED = re.compile(
    rf"""(?<![\w.])([\w.]+(?:\([^()\n]*\)|\[[^\]\n]*\])?)\.__dict__\b{_NAMESPACE_STORED}""", re.MULTILINE
)
# the module's own setter called: `mla_impl.__setattr__("Name", value)`
_SETTER_CALLED = re.compile(r"""(?<![\w.])([\w.]+(?:\([^()\n]*\)|\[[^\]\n]*\])?)\.__(?:setattr|delattr)__\(""")
_NAMESPACE_WRITES = (("setattr(", _SET_BY_NAME), ("delattr(", _SET_BY_NAME), ("vars(", _VARS_STORED),
                     ("__dict__", _DICT_STORED), ("__setattr__(", _SETTER_CALLED),
                     ("__delattr__(", _SETTER_CALLED))  # fmt: skip
# a module reached by a name computed at run time: `import_module(path)`, `__import__(name)`, `sys.modules[key]`
_COMPUTED_MODULE = re.compile(r"""(?:import_module\(|__import__\(|modules\[)(?!\s*[rRbBuU]?["'])""")
_ASSIGNED_COMPUTED_MODULE = re.compile(rf"^[ \t]*([\w.]+)[ \t]*=[^=\n]*{_COMPUTED_MODULE.pattern}", re.MULTILINE)
_ALIASED = re.compile(r"(\w+)(?:\s+as\s+(\w+))?")
# the module an object comes from, reached through the object: `inspect.getmodule(build)`,
# `sys.modules[build.__module__]`
_OBJECT_MODULE = re.compile(r"\bgetmodule\(|modules\s*\[[^\]\n]*__module__")
_DOTTED_STRING = re.compile(r"""["']([A-Za-z_]\w*(?:\.\w+)+(?::\w+)?)["']""")
# a function's namespace, the module it comes from (`build.__globals__["SCALE"] = 2`): any use may write it
_OBJECT_NAMESPACE = re.compile(r"__globals__")
# the module's namespace, or its setter, as an attribute of the module: any of its names may be rebound through it
_NAMESPACE_ATTRIBUTES = frozenset({"__dict__", "__setattr__", "__delattr__"})
# handed the module with no name (``vars(model)``, ``setattr(model, name, value)``), these may rebind any global
_NAMESPACE_WRITERS = frozenset({"setattr", "delattr", "vars"})
# a doctest's source line (`>>> from pkg.model import Name`, `... import x`), its prompt removed
_DOCTEST_LINE = re.compile(r"^[ \t]*(?:>>>|\.\.\.)(?: ([^\n]*))?$", re.MULTILINE)
_COMMENT = re.compile(r"#[^\n]*")
_NAMES = re.compile(r"(\w+)(?:\s+as\s+\w+)?")
_SKIPPED = frozenset(DEFAULT_EXCLUDE)
# configuration files, and the documentation pages whose doctests and API references (Sphinx's `.. autoclass::
# pkg.model.Name`) import from a builder
_CONFIGURATION_SUFFIXES = (".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".md", ".rst")
_CONFIGURATION_BYTES = 1 << 20


@dataclass
class Project:
    """The project-wide facts, gathered once before the files are rewritten."""

    src: tuple[str, ...] = ("",)
    root: Path | None = None
    adapter: str = ""  # the adapter's project path
    patched: frozenset[str] = frozenset()  # names some file patches or sets as an attribute by string
    # of those, the names a patch call names (`mock.patch("pkg.model.open")`, `patch.object(model, "open")`,
    # `monkeypatch.setattr(...)`): a plain `x.open = ...` sets an attribute of any object, seldom a module's
    patched_by_call: frozenset[str] = frozenset()
    maybe_stored: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> files that may set `x.name`
    reloaded: frozenset[str] = frozenset()  # the last parts of the modules some file reloads (`importlib.reload`)
    swapped: frozenset[str] = frozenset()  # modules some file puts into (or takes out of) `sys.modules` by name
    imported_from: dict[str, set[str]] = field(default_factory=dict)  # module -> names other files import
    importers: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (module, name) -> relpaths
    # builder module -> files that hold its namespace itself (``vars(model)``, ``model.__dict__``, a computed
    # ``setattr``, the module reached by its name as a string), through which they may rebind any of its names
    namespace_holders: dict[str, set[str]] = field(default_factory=dict)
    # file -> the modules it sets attributes of by a computed name or through their namespace (`setattr(module,
    # name, value)`, `vars(module)[name] = value`): a fork's patch manager
    namespace_writers: dict[str, frozenset[str]] = field(default_factory=dict)
    # the files among those that reach modules by a computed name (`import_module(path)`), and every dotted
    # string of the project (`"pkg.mla_impl.MLASelfAttention"` handed to such a patch manager)
    dynamic_writers: frozenset[str] = frozenset()
    dotted_strings: frozenset[str] = frozenset()
    # what importing the seam runs: each of its packages, then the adapter module, by name
    seam_packages: dict[str, PackageInit] = field(default_factory=dict)
    # names the project's files read from the seam (`mla_seam.name`, `from pkg.mla_seam import name`): a new
    # adapter function must not take one the adapter answers otherwise (a module `__getattr__`)
    seam_reads: frozenset[str] = frozenset()

    @classmethod
    def scan(cls, settings: Settings, builders: list[str]) -> Project:
        """The facts for rewriting ``builders`` (project paths): imports from them are all that matter."""
        project = cls(settings.src, settings.root, settings.adapter or "")
        modules = {".".join(project.module_parts(relpath)) for relpath in builders}
        # a builder also imported under another name, through a symlink in the project (`pkg/compat.py ->
        # model.py`, a linked folder): what is imported or read through that name counts for the builder
        aliases = project._aliased_modules(builders) if settings.root is not None else {}
        modules |= set(aliases)
        last_parts = {module.rpartition(".")[2] for module in modules}
        # `from pkg.model import` holds "model import": a substring test skips the files that cannot
        needles = [f"{part} import" for part in last_parts]
        spellings = _spellings(modules)
        patched: set[str] = set()
        by_call: set[str] = set()
        maybe_stored: dict[str, set[str]] = {}
        reloaded: set[str] = set()
        swapped: set[str] = set()
        dotted_strings: set[str] = set()
        dynamic_writers: set[str] = set()
        seam_module = ".".join(settings.adapter_module_parts)
        seam_name = seam_module.rpartition(".")[2]
        seam_reads = _seam_reads(seam_module) if seam_module else None
        dotted = tuple(module for module in modules if "." in module)
        for relpath, text in _scanned_files(settings.root, configuration=bool(dotted)):
            if dotted:
                project._scan_dotted_paths(relpath, text, dotted)
            # a doctest's imports count as another file's, the builder's own docstring's or a page of the docs
            # (`pytest --doctest-glob`, Sphinx) included: dropping the import its moved arm used would fail
            # `>>> from pkg.model import MLASelfAttention`
            examples = "\n".join(_DOCTEST_LINE.findall(text)) if ">>>" in text else ""
            python = relpath.endswith(".py")
            for code, reader in ((text if python else "", relpath), (examples, f"{relpath} (doctest)")):
                if any(part in code for part in last_parts):
                    project._scan_attribute_reads(relpath, code, spellings, reader)
                    project._scan_modules_by_name(code, modules, reader)
                if any(needle in code for needle in needles):
                    project._scan_imports(relpath, code, modules, last_parts, reader)
                if _OBJECT_NAMESPACE.search(code):
                    project._scan_object_namespaces(reader)
            if not python:
                continue
            if seam_reads is not None and seam_name in text and relpath != settings.adapter:
                project.seam_reads |= _names_read(seam_reads, text)
            if "patch" in text or "setattr" in text or "delattr" in text:
                by_call.update(_patched_names(text))
            patched.update(match.group(1) for match in _ASSIGNED_ATTRIBUTE.finditer(text))
            for name in set(_MAYBE_STORED_ATTRIBUTE.findall(text)):
                maybe_stored.setdefault(name, set()).add(relpath)
            strings = _DOTTED_STRING.findall(text)
            dotted_strings.update(strings)
            targets = _written_targets(text)
            if targets:
                written, dynamic = project._modules_written(relpath, text, targets)
                if written:
                    project.namespace_writers[relpath] = written
                if dynamic:
                    dynamic_writers.add(relpath)
                if any(_OBJECT_MODULE.search(target) for target in targets):
                    project._scan_object_namespaces(relpath)  # `vars(inspect.getmodule(build))[name] = ...`
            if "reload(" in text:
                reloaded.update(match.group(1).rpartition(".")[2] for match in _RELOADED.finditer(text))
            if "modules" in text:
                swapped.update(_swapped_modules(text))
        project.patched, project.patched_by_call = frozenset(patched | by_call), frozenset(by_call)
        project.maybe_stored = {name: frozenset(relpaths) for name, relpaths in maybe_stored.items()}
        project.reloaded = frozenset(reloaded)
        project.swapped = frozenset(swapped)
        for (module, name), readers in list(project.importers.items()):
            if module in aliases:
                project.importers.setdefault((aliases[module], name), set()).update(readers)
        for module, holders in list(project.namespace_holders.items()):
            if module in aliases:
                project.namespace_holders.setdefault(aliases[module], set()).update(holders)
        project.dotted_strings, project.dynamic_writers = frozenset(dotted_strings), frozenset(dynamic_writers)
        project.seam_packages = seam_inits(settings.root, project.project_file, ".".join(settings.adapter_module_parts))
        return project

    def _scan_imports(self, relpath: str, text: str, modules: set[str], last_parts: set[str], reader: str) -> None:
        """Record the names ``text`` (of ``relpath``; ``reader`` is who reads) imports from the builders."""
        for match in _FROM_IMPORT.finditer(text):
            if match.group(1).rpartition(".")[2] not in last_parts:
                continue
            module = self.absolute(relpath, match.group(1))
            imported = _COMMENT.sub("", match.group(2)).strip("() \t")
            # `from model import Name` in a script that put the builder's folder on `sys.path` (no project module
            # has that name): the builder `pkg.model` under a shorter name
            reached = [module] if module in modules else [] if self.project_file(module) else [
                builder for builder in modules if builder.endswith(f".{module}")
            ]  # fmt: skip
            for builder in reached:
                for name in ["*"] if imported == "*" else _NAMES.findall(imported):
                    self.importers.setdefault((builder, name), set()).add(reader)

    def _scan_attribute_reads(self, relpath: str, text: str, spellings: dict[str, list[str]], reader: str) -> None:
        """Record the builders' names ``relpath`` reads as attributes of their module: ``model.Name`` after
        ``from pkg import model``, ``pkg.model.Name`` after ``import pkg.model``, ``m.Name`` after ``import
        pkg.model as m`` or ``from pkg import model as m``, ``getattr(model, "Name")``. Where the file imports
        the module and may read any of its names (``getattr(model, name)``, ``vars(model)``,
        ``model.__dict__``), record ``*``; a bare ``model`` the file does not import is taken for a variable."""
        spelled_as = dict(spellings)
        imported = {spelling: modules for spelling, modules in spellings.items() if "." in spelling}
        for match in _MODULE_ALIAS.finditer(text):
            package, name, module, alias = match.groups()
            module = module or f"{self.absolute(relpath, package)}.{name}".lstrip(".")
            if module in spellings.get(module, ()):  # a builder module, named in full
                spelled_as[alias] = imported[alias] = [*spelled_as.get(alias, ()), module]
        for match in _FROM_IMPORT.finditer(text):
            package = self.absolute(relpath, match.group(1))
            for name in _NAMES.findall(_COMMENT.sub("", match.group(2))):
                if f"{package}.{name}".lstrip(".") in spellings.get(name, ()):
                    imported[name] = spellings[name]
        for match in _IMPORT.finditer(text):  # `import model`: a top-level builder module, or one on `sys.path`
            for name in (part.strip() for part in _COMMENT.sub("", match.group(1)).split(",")):
                if name in spellings.get(name, ()):
                    imported[name] = [name]
                elif name in spellings and not self.project_file(name):
                    imported[name] = spellings[name]
        for match in _attribute_read(tuple(spelled_as)).finditer(text):
            spelling, name = match.groups()
            if name in _NAMESPACE_ATTRIBUTES:  # `model.__dict__`, `model.__setattr__("SCALE", 2)`
                spelling, name = (spelling, "*") if spelling in imported else ("", "")
            for module in spelled_as.get(spelling, ()):
                self.importers.setdefault((module, name), set()).add(reader)
                if name == "*":
                    self.namespace_holders.setdefault(module, set()).add(reader)
        for match in _dynamic_read(tuple(imported)).finditer(text) if imported else ():
            function, spelling, name = match.groups()
            for module in imported[spelling]:
                self.importers.setdefault((module, name or "*"), set()).add(reader)
                if function in _NAMESPACE_WRITERS and not name:
                    self.namespace_holders.setdefault(module, set()).add(reader)

    def _aliased_modules(self, builders: list[str]) -> dict[str, str]:
        """The import names under which a symlink in the project (to a builder, or to a folder holding one)
        reaches each builder: alias -> the builder's own module name."""
        assert self.root is not None
        real = {os.path.realpath(self.root / relpath): relpath for relpath in builders}
        found: dict[str, str] = {}
        for directory, subfolders, files in os.walk(self.root):  # links to folders are listed, not followed
            subfolders[:] = [name for name in subfolders if name not in _SKIPPED and not name.startswith(".")]
            for name in [*files, *subfolders]:
                link = os.path.join(directory, name)
                if not os.path.islink(link):
                    continue
                target = os.path.realpath(link)
                for real_path, relpath in real.items():
                    if real_path == target:
                        alias = link
                    elif real_path.startswith(target + os.sep):
                        alias = os.path.join(link, os.path.relpath(real_path, target))
                    else:
                        continue
                    alias_relpath = os.path.relpath(alias, self.root).replace(os.sep, "/")
                    found[".".join(self.module_parts(alias_relpath))] = ".".join(self.module_parts(relpath))
        return found

    def _modules_written(self, relpath: str, text: str, targets: list[str]) -> tuple[frozenset[str], bool]:
        """The modules ``text`` (of ``relpath``) sets attributes of by a computed name or through their namespace,
        as far as its text tells: a target it imports as a module (``from pkg import mla_impl``, ``import
        pkg.mla_impl as m``); and whether a target is a module reached at run time (``import_module(path)``,
        ``sys.modules[key]``, or a variable assigned one), which may be any module."""
        modules: dict[str, str] = {}  # the file's spelling -> the module it may name
        for match in _FROM_IMPORT.finditer(text):
            package = self.absolute(relpath, match.group(1))
            for name, alias in _ALIASED.findall(_COMMENT.sub("", match.group(2))):
                modules[alias or name] = f"{package}.{name}"
        for match in _IMPORT.finditer(text):
            for part in _COMMENT.sub("", match.group(1)).split(","):
                name, _, alias = part.strip().partition(" as ")
                modules[alias.strip() or name.strip()] = name.strip()
        written, dynamic = set(), False
        computed = set(_ASSIGNED_COMPUTED_MODULE.findall(text))  # `module = import_module(path)`
        for target in targets:
            if _COMPUTED_MODULE.search(target) or target in computed:
                dynamic = True
            elif target in modules:
                written.add(modules[target])
            elif named := _MODULE_BY_NAME.search(target):
                written.add(self.absolute(relpath, named.group(1)))
        return frozenset(written), dynamic

    def namespace_rewriter(self, module: str, name: str) -> str | None:
        """A file that may set ``module``'s ``name`` by a computed name or through the module's namespace (a
        patch manager's ``setattr(import_module(path), attribute, value)``), if one may: it names the module, or
        it reaches modules by a computed name and some file names the module's ``name`` in a string."""
        for relpath, written in sorted(self.namespace_writers.items()):
            if module in written:
                return relpath
        if f"{module}.{name}" in self.dotted_strings or f"{module}:{name}" in self.dotted_strings:
            return next(iter(sorted(self.dynamic_writers)), None)
        return None

    def _scan_object_namespaces(self, reader: str) -> None:
        """``reader`` reaches the namespace of an object's module (``build.__globals__``,
        ``inspect.getmodule(build)``, ``sys.modules[build.__module__]``): the namespace of every builder module
        it takes an object from, as far as the text tells."""
        for (module, _), readers in list(self.importers.items()):
            if reader in readers:
                self.namespace_holders.setdefault(module, set()).add(reader)

    def _scan_dotted_paths(self, relpath: str, text: str, modules: tuple[str, ...]) -> None:
        """A file naming a builder's global by its path (Hydra's ``_target_: pkg.model.Name``, a registry's
        JSON, an entry point's ``pkg.model:Name``, ``pkgutil.resolve_name``): whatever loads it reads the name
        from the builder module."""
        if any(module in text for module in modules):
            for match in _dotted_path(modules).finditer(text):
                self.importers.setdefault(match.groups(), set()).add(relpath)

    def _scan_modules_by_name(self, text: str, modules: set[str], reader: str) -> None:
        """A builder module reached by its name as a string (``importlib.import_module``) may have any of its
        names read: record it as ``import *``. A relative name counts for every builder it could be."""
        for match in _MODULE_BY_NAME.finditer(text):
            named = match.group(1)
            for module in modules:
                if module == named or (named.startswith(".") and module.endswith(named)):
                    self.importers.setdefault((module, "*"), set()).add(reader)
                    self.namespace_holders.setdefault(module, set()).add(reader)

    def module_parts(self, relpath: str) -> tuple[str, ...]:
        """The import name of a project file, counted from the deepest source root that holds it."""
        return module_parts(relpath, self.src)

    def package_parts(self, relpath: str) -> tuple[str, ...]:
        return package_parts(relpath, self.src)

    def source_root(self, relpath: str) -> str:
        """The folder that ``relpath``'s import name is counted from (one of ``src``; ``.`` for the project's)."""
        path = PurePosixPath(relpath)
        depth = len(self.module_parts(relpath)) + (path.stem == "__init__")
        return PurePosixPath(*path.parts[: len(path.parts) - depth]).as_posix()

    def absolute(self, relpath: str, module: str) -> str:
        """``from <module> import`` in the file ``relpath``, its leading dots resolved."""
        level = len(module) - len(module.lstrip("."))
        return absolute_module(self.package_parts(relpath), level, module[level:])

    def is_patched(self, name: str) -> bool:
        """Does some file patch a module's global ``name`` by name (or a name it computes), or set it as an
        attribute (of a module, or of anything but ``self``/``cls``: which object it is the text cannot tell)?"""
        if name in self.patched or _ANY_NAME in self.patched:
            return True
        return self.root is not None and any(
            name in _attributes_stored(str(self.root / relpath)) for relpath in self.maybe_stored.get(name, ())
        )

    def submodule_of(self, relpath: str, name: str) -> bool:
        """Is ``relpath`` a package's ``__init__.py`` with a submodule (or subpackage) ``name``?"""
        if self.root is None or PurePosixPath(relpath).name != "__init__.py":
            return False
        folder = self.root / PurePosixPath(relpath).parent
        return (folder / f"{name}.py").is_file() or (folder / name).is_dir()

    def sibling_may_answer(self, module: str, names: list[str] | None, relpath: str) -> bool:
        """Can the plain module beside ``relpath`` named as ``module``'s first part be what an import of
        ``module`` reaches (``from module import names``; ``names`` None: ``import module``)? Not where the import
        asks for a submodule (a plain module has none) or a name the module does not bind (Model-Optimizer's
        ``from transformers import Cache`` beside its ``plugins/transformers.py``: the library, not the plugin),
        nor where the module imports relatively at its top level: as a top-level module it fails to import."""
        first, dotted, _ = module.partition(".")
        if dotted or self.root is None:
            return not dotted
        try:
            tree = ast.parse((self.root / PurePosixPath(relpath).parent / f"{first}.py").read_bytes())
        except (OSError, SyntaxError, ValueError):
            return True
        if any(isinstance(node, ast.ImportFrom) and node.level for node in tree.body):
            return False
        bound = top_level_names(tree)
        open_ended = "__getattr__" in bound or any(
            isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names) for node in tree.body
        )
        return names is None or open_ended or all(name in bound for name in names)

    def imported_by_its_package(self, relpath: str) -> bool:
        """Does the ``__init__.py`` of ``relpath``'s own package import it (``from . import mod``, ``from .mod
        import x``, ``import pkg.mod``)? Then it runs as a part of its package, as the package is imported."""
        path = PurePosixPath(relpath)
        module = ".".join(self.module_parts(relpath))
        package = self.package_parts(relpath)
        if self.root is None or path.name == "__init__.py" or not package:
            return False
        try:
            tree = ast.parse((self.root / path.parent / "__init__.py").read_bytes())
        except (OSError, SyntaxError, ValueError):
            return False
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                loaded = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = absolute_module(package, node.level, node.module)
                loaded = [source, *(f"{source}.{alias.name}" for alias in node.names)]
            else:
                continue
            if any(name == module or name.startswith(module + ".") for name in loaded):
                return True
        return False

    def shadows_builtin(self, module: str, name: str, relpath: str) -> bool:
        """Does some file set ``module``'s global ``name`` (a builtin's name) while it has no such global of its
        own: a test's ``mock.patch("pkg.model.open", fake, create=True)``, ``patch.object(model, "open", ...)``,
        ``model.open = fake``? (A plain ``x.open = ...`` elsewhere sets some object's attribute, and does not count,
        nor does ``from model import *``, which copies the module's globals and sets none; a file reaching the
        namespace by a computed name is ``namespace_held_elsewhere``.)"""
        named = self.importers.get((module, name), set()) - {relpath}
        return name in self.patched_by_call or _ANY_NAME in self.patched_by_call or bool(named)

    def namespace_held_elsewhere(self, module: str, relpath: str) -> bool:
        """Does a project file other than ``relpath`` (the builder module ``module``) hold the module's namespace
        itself, through which it may rebind any of the module's names (``vars(model)["SCALE"] += 1``), or may a
        patch manager reach it (``setattr(import_module(path), name, value)`` somewhere, the module's name in a
        string: ``override(f"{MODEL}.Name", fused)``)?"""
        if self.namespace_holders.get(module, set()) - {relpath}:
            return True
        return bool(self.dynamic_writers - {relpath}) and any(
            text == module or text.startswith(f"{module}.") for text in self.dotted_strings
        )

    def reexported(self, module: str, name: str, relpath: str) -> bool:
        """Does a project file other than ``relpath`` import ``name`` from ``module`` (or all: ``*``)?"""
        return bool((self.importers.get((module, name), set()) | self.importers.get((module, "*"), set())) - {relpath})

    def project_file(self, module: str) -> str | None:
        """The project file (relpath) that ``module`` imports from the source roots, if any."""
        if self.root is None:
            return None
        path = module.replace(".", "/")
        for root in self.src:
            for candidate in (f"{path}.py", f"{path}/__init__.py"):
                relpath = f"{root}/{candidate}" if root else candidate
                if (self.root / relpath).is_file():
                    return relpath
        return None

    def is_script_import(self, module: str, relpath: str) -> bool:
        """Is ``module`` a script next to the builder ``relpath`` rather than a module of a source root?"""
        if self.root is None or "." in module or self.project_file(module):
            return False
        folder = PurePosixPath(relpath).parent.as_posix()
        return folder not in (*self.src, ".") and (self.root / folder / f"{module}.py").is_file()


def _seam_reads(seam_module: str) -> re.Pattern[str]:
    """``mla_seam.name`` (group 1), ``from pkg.mla_seam import a, b`` (group 2: the names)."""
    name, module = re.escape(seam_module.rpartition(".")[2]), re.escape(seam_module)
    return re.compile(
        rf"(?<![\w.]){name}\.([A-Za-z_]\w*)|^[ \t]*from[ \t]+{module}[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.MULTILINE
    )


def _names_read(pattern: re.Pattern[str], text: str) -> frozenset[str]:
    names = set()
    for match in pattern.finditer(text):
        if match.group(1):
            names.add(match.group(1))
        else:
            names.update(_NAMES.findall(_COMMENT.sub("", match.group(2)).strip("() \t")))
    return frozenset(names)


def _patched_names(text: str) -> Iterator[str]:
    """The globals ``text`` patches or sets by name, in any module: the last part of a string target (all
    of a target's adjacent literals joined; ``_ANY_NAME`` where that part is computed in an f-string), the
    attribute of ``setattr(mod, "Name")``-style calls, the keywords of ``patch.multiple``."""
    for match in _PATCHED_PATH.finditer(text):
        target, position = "", match.end()
        while literal := _STRING_LITERAL.match(text, position):
            target, position = target + literal.group(2), literal.end()
        module, _, name = target.rpartition(".")
        if module == "builtins":
            continue  # `mock.patch("builtins.open")` patches what every module reads, the adapter too
        if name.isidentifier():
            yield name
        elif name.endswith("}"):
            yield _ANY_NAME
    yield from (match.group(1) or match.group(2) for match in _PATCHED_ATTRIBUTE.finditer(text))
    for match in _PATCHED_KEYWORDS.finditer(text):
        arguments = _call_arguments(text, match.end())
        yield from (name for name in _KEYWORD.findall(arguments) if name not in _MULTIPLE_OPTIONS)


def _call_arguments(text: str, start: int) -> str:
    """The argument list of the call whose ``(`` ends at ``start``, with its nested brackets and string
    literals removed (so that only its own keywords are left to read)."""
    arguments = text[start : _bracket_end(text, start) - 1]
    while (flattened := _NESTED.sub("", arguments)) != arguments:
        arguments = flattened
    return arguments


def _spellings(modules: set[str]) -> dict[str, list[str]]:
    """The builder modules each spelling can name: ``pkg.model`` itself, ``model`` any ``*.model``."""
    spellings: dict[str, list[str]] = {}
    for module in modules:
        spellings.setdefault(module, []).append(module)
        if "." in module:
            spellings.setdefault(module.rpartition(".")[2], []).append(module)
    return spellings


@functools.lru_cache(maxsize=64)
def _attribute_read(spellings: tuple[str, ...]) -> re.Pattern[str]:
    """``<spelling>.<Name>``, where the spelling is not itself an attribute (``self.model.x``)."""
    alternatives = "|".join(re.escape(spelling) for spelling in sorted(spellings, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({alternatives})\.(\w+)")


@functools.lru_cache(maxsize=64)
def _dotted_path(modules: tuple[str, ...]) -> re.Pattern[str]:
    """``<module>.<Name>`` or ``<module>:<Name>`` (an entry point's spelling)."""
    alternatives = "|".join(re.escape(module) for module in sorted(modules, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({alternatives})[.:](\w+)")


@functools.lru_cache(maxsize=64)
def _dynamic_read(spellings: tuple[str, ...]) -> re.Pattern[str]:
    """``getattr(<spelling>, "Name")`` (groups: the function, the spelling, the name), or the module handed to
    a function that can read any of its names: ``getattr``/``hasattr``/``setattr``/``delattr`` with a computed
    name, ``vars``, ``dir``, ``inspect.getmembers``."""
    alternatives = "|".join(re.escape(spelling) for spelling in sorted(spellings, key=len, reverse=True))
    return re.compile(
        rf"""(?<!\w)(getattr|hasattr|setattr|delattr|vars|dir|getmembers)\(\s*({alternatives})\s*(?:,\s*[rbu]?["'](\w+)["']|[,)])"""
    )


def _bracket_end(text: str, start: int, opening: str = "(", limit: int | None = None) -> int:
    """Just past the bracket that closes the ``opening`` one ending at ``start`` (nested pairs of the same kind
    skipped), or where the text, or the scan at ``limit``, ends."""
    closing = {"(": ")", "[": "]"}[opening]
    depth, end, stop = 1, start, len(text) if limit is None else min(limit, len(text))
    while end < stop and depth:
        depth += {opening: 1, closing: -1}.get(text[end], 0)
        end += 1
    return end


def _written_targets(text: str) -> list[str]:
    """What ``text`` sets attributes of by a computed name or through its namespace (``_NAMESPACE_WRITES``)."""
    patterns = dict.fromkeys(pattern for word, pattern in _NAMESPACE_WRITES if word in text)
    return [match.group(1).strip() for pattern in patterns for match in pattern.finditer(text)]


def _swapped_modules(text: str) -> Iterator[str]:
    """The module names (string literals) in each change of ``sys.modules`` in ``text``: the subscript or the
    call's arguments, a dict literal spanning lines included. A change naming no module there
    (``sys.modules[MODULE] = stub``) counts for every name any string literal of ``text`` holds."""
    for match in _MODULES_CHANGED.finditer(text):
        opening = text.rfind("[" if match.group().rstrip().endswith("[") else "(", match.start(), match.end())
        end = _bracket_end(text, opening + 1, text[opening], limit=opening + 5000)
        named = _MODULE_NAME_LITERAL.findall(text, opening, end)
        if not named:
            yield from _MODULE_NAME_LITERAL.findall(text)
            return
        yield from named


def _attributes_stored(path: str) -> frozenset[str]:
    """The attributes the file at ``path`` assigns or deletes on anything but ``self``/``cls``, in any target
    (tuple, chained, loop, ``with ... as``)."""
    try:
        status = os.stat(path)
    except OSError:
        return frozenset()
    return _attributes_stored_in(path, (status.st_mtime_ns, status.st_size))


@functools.lru_cache(maxsize=256)
def _attributes_stored_in(path: str, stamp: tuple[int, int]) -> frozenset[str]:
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError, RecursionError):
        return frozenset()
    return frozenset(
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, (ast.Store, ast.Del))
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    )


def is_test_module(module: str) -> bool:
    return any(part in ("test", "tests") or part.startswith("test_") for part in module.split("."))


def _scanned_files(root: Path, configuration: bool = False) -> Iterator[tuple[str, str]]:
    """Each Python file under ``root`` with its text; with ``configuration``, each configuration file too
    (YAML, JSON, TOML, INI: where Hydra-style ``_target_`` paths live) and documentation page (Markdown,
    reStructuredText: doctests, Sphinx references), up to ``_CONFIGURATION_BYTES``."""
    for directory, folders, files in os.walk(root):
        folders[:] = [name for name in folders if name not in _SKIPPED and not name.startswith(".")]
        for name in files:
            python = name.endswith(".py")
            if python or configuration and name.endswith(_CONFIGURATION_SUFFIXES):
                path = os.path.join(directory, name)
                try:
                    info = os.stat(path)
                    if not stat.S_ISREG(info.st_mode):
                        continue  # a FIFO or device would block the read (the lint names it)
                    if not python and info.st_size > _CONFIGURATION_BYTES:
                        continue  # a data set, not a configuration
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        text = handle.read()
                except OSError:
                    continue
                yield os.path.relpath(path, root).replace(os.sep, "/"), text
