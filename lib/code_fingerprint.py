"""A fingerprint of the code that computes a result, so that a cache never serves numbers that
other code made.

Every cached result of the study (a per-image record in ``lib/runs.py``, a training stage of
JigsawGAN or SegGAN) is stored under a key made of its parameters, its data and
:func:`code_fingerprint` of the functions and classes that compute it. The fingerprint hashes
the *statements* of those entry points and of every top-level definition of ``lib`` that they
reach by name, transitively (a call, a class used, a constant read, through imports and
re-exports, including imports inside functions). So:

- a student who edits a loss in ``lib/losses.py`` gets new numbers from every method that uses
  that loss, and the cached results of the others;
- editing a comment or a docstring changes nothing (neither is a statement: the source is
  parsed, docstrings are dropped and the tree is printed back), and neither does editing a
  table or a figure function that the entry points never reach.

What is *not* in it: the installed libraries (PyTorch, NumPy: pinned by ``uv.lock``), the data
(each cache key holds a fingerprint of the pixels it was computed from), and code reached only
through a string (``lib.data.load("bsds500")``: the data's own fingerprint covers what a loader
returns). The text is read from the source files, so an edit counts as soon as it is saved,
even in a kernel that imported the module before.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

#: the package whose code is fingerprinted; everything else counts as an installed library
PACKAGE = "lib"
_ROOT = Path(__file__).resolve().parent


@dataclass
class _Module:
    """One source file of the package, parsed: its top-level definitions and imports."""

    name: str  # dotted: "lib.methods.seggan"
    package: bool  # an __init__.py
    definitions: dict[str, list[ast.stmt]] = field(default_factory=dict)  # name -> the statements binding it
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, attribute)
    rest: list[ast.stmt] = field(default_factory=list)  # other top-level statements (run at import)


def _module_name(path: Path) -> str:
    parts = path.relative_to(_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: _Module, level: int, name: str | None) -> str:
    """The absolute module name of ``from <dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.name.split(".")
    base = base if module.package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(module: _Module, node: ast.stmt) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, attribute or None for a module) bound by an import statement."""
    out: dict[str, tuple[str, str | None]] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                out[alias.asname] = (alias.name, None)
            else:  # ``import a.b`` binds ``a``
                out[alias.name.split(".")[0]] = (alias.name.split(".")[0], None)
    elif isinstance(node, ast.ImportFrom):
        source = _absolute(module, node.level, node.module)
        for alias in node.names:
            out[alias.asname or alias.name] = (source, alias.name)
    return out


def _without_docstrings(node: ast.AST) -> ast.AST:
    """A copy of ``node`` with the docstring of every module, class and function dropped."""
    import copy

    node = copy.deepcopy(node)
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if (isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            n.body = body[1:] or [ast.Pass()]
    return node


def _parse(path: Path) -> _Module:
    module = _Module(_module_name(path), path.name == "__init__.py")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module.definitions.setdefault(node.name, []).append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            for name in names:
                module.definitions.setdefault(name, []).append(node)
            if not names:
                module.rest.append(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module.imports.update(_imports(module, node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring, or a bare string
        else:
            module.rest.append(node)
    return module


@lru_cache(maxsize=None)
def _package(stamp: tuple) -> dict[str, _Module]:
    """Every module of the package, parsed (cached while no source file changes: ``stamp``)."""
    return {m.name: m for m in (_parse(Path(p)) for p, _, _ in stamp)}


def _stamp() -> tuple:
    files = sorted(_ROOT.rglob("*.py"))
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


class _Walker:
    """Collects the definitions reached from the entry points."""

    def __init__(self, modules: dict[str, _Module]):
        self.modules = modules
        self.reached: dict[tuple[str, str], list[ast.stmt]] = {}
        self.rest: set[str] = set()  # modules whose other top-level statements count

    def resolve(self, module: str, name: str, seen: frozenset = frozenset()) -> tuple[str, str | None] | None:
        """What ``name`` in ``module`` is: ("def", module, name), ("module", module, None), or
        None for something outside the package (a builtin, torch, a local variable)."""
        if (module, name) in seen:
            return None
        seen = seen | {(module, name)}
        m = self.modules.get(module)
        if m is None:
            return None
        if name in m.definitions:
            return (module, name)
        if name in m.imports:
            source, attribute = m.imports[name]
            if attribute is None:
                return (source, None) if source.split(".")[0] == PACKAGE else None
            if f"{source}.{attribute}" in self.modules:  # ``from .. import files``
                return (f"{source}.{attribute}", None)
            return self.resolve(source, attribute, seen)
        return None

    def add(self, module: str, name: str) -> None:
        if (module, name) in self.reached:
            return
        statements = self.modules[module].definitions[name]
        self.reached[(module, name)] = statements
        if self.modules[module].rest:
            self.rest.add(module)
        for node in statements:
            self.visit(module, node)

    def visit(self, module: str, node: ast.AST) -> None:
        m = self.modules[module]
        local: dict[str, tuple[str, str | None]] = {}
        for n in ast.walk(node):  # imports inside functions bind names for the whole definition
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                local.update(_imports(m, n))
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute):
                chain = _chain(n)
                if chain is not None:
                    self._follow_chain(module, local, chain)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                self._follow(self._lookup(module, local, n.id))

    def _target(self, source: str, attribute: str | None):
        if source.split(".")[0] != PACKAGE:
            return None
        if attribute is None:
            return (source, None) if source in self.modules else None
        if f"{source}.{attribute}" in self.modules:
            return (f"{source}.{attribute}", None)
        return self.resolve(source, attribute)

    def _lookup(self, module: str, local: dict, name: str):
        if name in local:
            return self._target(*local[name])
        return self.resolve(module, name)

    def _follow(self, target) -> None:
        if target is None:
            return
        module, name = target
        if name is not None:
            self.add(module, name)

    def _follow_chain(self, module: str, local: dict, chain: list[str]) -> None:
        """``files.atomic_write`` or ``lib.methods.seggan.Setting``: the definition at the end
        of a chain of modules."""
        target = self._lookup(module, local, chain[0])
        for attribute in chain[1:]:
            if target is None or target[1] is not None:
                break  # a definition's attribute: the definition itself is already followed
            source = target[0]
            target = (f"{source}.{attribute}", None) if f"{source}.{attribute}" in self.modules else \
                self.resolve(source, attribute)
        if target is not None and target[1] is not None:
            self._follow(target)


def _chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None when the chain does not start at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _entries(obj: Any) -> list[tuple[str, str]]:
    """(module, top-level name) of a function, class, method or instance of the package; for
    code outside it (a method written in a notebook or a test), ("", its source) and the
    package's classes it derives from."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)):
        obj = type(obj)  # an instance: its class
    if inspect.ismethod(obj):
        obj = obj.__func__
    module, qualname = obj.__module__, obj.__qualname__
    if module.split(".")[0] == PACKAGE:
        return [(module, qualname.split(".")[0])]
    try:
        source = ast.unparse(_without_docstrings(ast.parse(inspect.getsource(obj).strip())))
    except (OSError, TypeError, SyntaxError) as exc:
        raise ValueError(f"{obj!r} is outside the {PACKAGE!r} package and its source cannot be read ({exc}), "
                         "so a cache could not tell when it changes") from None
    bases = [b for b in getattr(obj, "__mro__", ())[1:] if b.__module__.split(".")[0] == PACKAGE]
    return [("", source), *(e for b in bases for e in _entries(b))]


def _key(entries: Any) -> tuple[tuple[str, str], ...]:
    return tuple(e for obj in entries for e in _entries(obj))


def reached(*entries: Any) -> list[str]:
    """The definitions (``module:name``) whose statements :func:`code_fingerprint` hashes."""
    walker = _walk(_key(entries), _stamp())
    return sorted(f"{m}:{n}" for m, n in walker.reached)


@lru_cache(maxsize=256)
def _walk(entries: tuple[tuple[str, str], ...], stamp: tuple) -> _Walker:
    walker = _Walker(_package(stamp))
    for module, name in entries:
        if not module:
            continue  # code outside the package: hashed as its source (_fingerprint)
        if module not in walker.modules or name not in walker.modules[module].definitions:
            raise ValueError(f"{module}:{name} is not a top-level definition of the package's source")
        walker.add(module, name)
    return walker


def code_fingerprint(*entries: Any) -> str:
    """12 hexadecimal digits that change when a statement of ``entries`` (functions, classes or
    instances of ``lib``) or of the package code they reach changes (see the module docstring)."""
    return _fingerprint(_key(entries), _stamp())


@lru_cache(maxsize=256)
def _fingerprint(entries: tuple[tuple[str, str], ...], stamp: tuple) -> str:
    walker = _walk(entries, stamp)
    h = hashlib.sha256()
    for module, source in entries:
        if not module:
            h.update(f"outside:\n{source}\n".encode())
    for (module, name), statements in sorted(walker.reached.items()):
        h.update(f"{module}:{name}\n".encode())
        for node in statements:
            h.update(ast.unparse(_without_docstrings(node)).encode())
    for module in sorted(walker.rest):
        for node in walker.modules[module].rest:
            h.update(ast.unparse(_without_docstrings(node)).encode())
    return h.hexdigest()[:12]
