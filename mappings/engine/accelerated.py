"""The engine's hot modules compiled to C by Cython, used only while they match their source.

The same Python files, unchanged, are compiled at setup (`scripts/build_accelerated.py`, run by scripts/run and
scripts/test) into `build/accelerated/<module>.<hash of its source><extension suffix>`. This module, imported first by
mappings/engine/__init__.py, puts a finder in front of the import system: it loads such a file for a module named in
MODULES when one exists for the source as it is now, and otherwise lets Python import the .py as usual. So an edited
module is never shadowed by an older build, and a machine without a C compiler runs the same code, slower.
`FHIR_STUDIO_PURE_PYTHON=1` turns the finder off.

What is compiled: the per-message code that is ours (source accessors, filters, post-processing, the validator's
helpers, the sandbox's environment). Compiled code has no frames of its own, so the two places that look for the
template's frame start from `sys._getframe(0)`. Not compiled: the template compiler, and what runs once per mapping
version.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import FunctionType

from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / "build" / "accelerated"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # the running interpreter's ABI: another Python builds its own
# How the modules are compiled (scripts/build_accelerated.py), part of each build's hash: changing it rebuilds all.
# annotation_typing off: Cython would otherwise refuse a str subclass (Markup) where a hint says str. warn.unreachable
# off: the plain-Python path after an `if cython.compiled:` branch that returns is unreachable compiled, on purpose.
DIRECTIVES = {"binding": True, "annotation_typing": False, "language_level": 3, "warn.unreachable": False}
# The C layouts a build reads (xmltree.py walks lxml's elements through its C API): another lxml rebuilds all.
C_APIS = {"lxml": etree.__version__}
MODULES = (
    "mappings.engine.hl7v2",
    "mappings.engine.hl7v2_text",
    "mappings.engine.xmlsource",
    "mappings.engine.xmltree",
    "mappings.engine.lookup",
    "mappings.engine.postprocess",
    "mappings.engine.filters.values",
    "mappings.engine.filters.hl7v2_types",
    "mappings.engine.filters.ccda_types",
    "mappings.engine.filters.dates",
    "mappings.engine.filters.codes",
    "mappings.engine.formats.decimals",
    "mappings.engine.validation.walk",
    "mappings.engine.validation.checkers",
    "mappings.engine.validation.primitives",
    "mappings.engine.validation.invariants",
    "mappings.engine.validation.references",
    "mappings.engine.validation.natives",
    "mappings.engine.validation.terminology",
    "mappings.engine.validation.fastpath",
    "mappings.engine.validation.slicing",
    "mappings.engine.environment",
    "mappings.engine.sources",
    "mappings.engine.pipeline",
    "mappings.engine.validate",
    "mappings.engine.limits",
    "mappings.engine.missing",
)


def is_function(value: object) -> bool:
    """A Python function of ours, compiled or not: a compiled one is Cython's function type, no FunctionType."""
    return isinstance(value, FunctionType) or type(value).__name__ == "cython_function_or_method"


def source_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def built_path(module: str, source: bytes) -> Path:
    """Where the build of `module` from exactly this source text lives."""
    built_with = repr(sorted(DIRECTIVES.items())) + repr(sorted(C_APIS.items()))
    digest = hashlib.sha256(built_with.encode() + source).hexdigest()[:16]
    return BUILD_DIR / f"{module}.{digest}{SUFFIX}"


class _CompiledFinder:
    """Finds the current build of a module in MODULES; None (Python's own import) when there is none."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname not in _WANTED:
            return None
        try:
            built = built_path(fullname, source_path(fullname).read_bytes())
        except OSError:
            return None
        if not built.is_file():
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(built))
        return importlib.util.spec_from_file_location(fullname, built, loader=loader)


_WANTED = frozenset(MODULES)
_FINDER = _CompiledFinder()


def install() -> None:
    """Load the compiled modules from now on (idempotent); nothing when FHIR_STUDIO_PURE_PYTHON is set."""
    if os.environ.get("FHIR_STUDIO_PURE_PYTHON") or _FINDER in sys.meta_path:
        return
    sys.meta_path.insert(0, _FINDER)


install()  # at import: mappings/engine/__init__.py imports this module before any other


def loaded_compiled() -> dict[str, bool]:
    """For each module in MODULES that is imported: whether it runs compiled."""
    return {
        name: isinstance(getattr(sys.modules[name], "__loader__", None), importlib.machinery.ExtensionFileLoader)
        for name in MODULES
        if name in sys.modules
    }
