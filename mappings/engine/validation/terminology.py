"""Bindings: value sets expanded once from the shipped ValueSets and CodeSystems into frozensets, and the check of a
code, Coding, CodeableConcept or Quantity against them.

What can be expanded: `compose.include` with enumerated concepts, with a whole `system` (its CodeSystem's concepts,
nested ones too), with other `valueSet`s, and `compose.exclude` of enumerated concepts. A system the registry does not
hold, or an include with a `filter`, leaves that system *open*: any code of it is accepted, because we cannot say it is
wrong. A value set we do not have at all is never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from mappings.engine.errors import ErrorCode

from .primitives import show


@dataclass(frozen=True)
class Expansion:
    codes: frozenset[tuple[str, str]]  # (system, code)
    bare_codes: frozenset[str]  # the codes alone, for `code` elements (which carry no system)
    systems: frozenset[str]  # every system the value set draws from
    open_systems: frozenset[str]  # systems whose codes we cannot list: any code of them is accepted
    ordered: tuple[str, ...] = ()  # the codes in the value set's own order (for messages and completion)

    def has(self, system: str | None, code: str) -> bool:
        if system is None:
            return code in self.bare_codes or bool(self.open_systems)
        return (system, code) in self.codes or system in self.open_systems

    def listing(self, limit: int = 12) -> str:
        codes = self.ordered
        shown = ", ".join(codes[:limit])
        return shown + (f", … ({len(codes)} codes)" if len(codes) > limit else "")


def expand(registry, url: str) -> Expansion | None:
    """The value set's expansion, cached on the registry; None when the registry does not have the value set."""
    cache = registry.__dict__.get("_expansions")
    if cache is None:
        cache = registry.__dict__.setdefault("_expansions", {})
    found = cache.get(url, cache)
    if found is cache:
        found = cache[url] = _expand(registry, url, set())
    return found


def _expand(registry, url: str, seen: set[str]) -> Expansion | None:
    value_set = registry.value_set(url)
    if value_set is None or url in seen:
        return None
    seen.add(url)
    codes: dict[tuple[str, str], None] = {}  # a dict keeps the value set's order
    systems: set[str] = set()
    open_systems: set[str] = set()
    expansion = value_set.get("expansion", {}).get("contains")
    if expansion and not value_set.get("compose"):
        _add_contains(expansion, codes, systems)
    for include in value_set.get("compose", {}).get("include", ()):
        _include(registry, include, codes, systems, open_systems, seen)
    for exclude in value_set.get("compose", {}).get("exclude", ()):
        system = exclude.get("system")
        for concept in exclude.get("concept", ()):
            codes.pop((system, concept.get("code")), None)
    return Expansion(
        codes=frozenset(codes),
        bare_codes=frozenset(code for _, code in codes),
        systems=frozenset(systems | open_systems),
        open_systems=frozenset(open_systems),
        ordered=tuple(dict.fromkeys(code for _, code in codes)),
    )


def _include(registry, include: dict, codes: dict, systems: set, open_systems: set, seen: set[str]) -> None:
    system = include.get("system")
    for inner_url in include.get("valueSet", ()):
        inner = _expand(registry, inner_url.split("|", 1)[0], seen)
        if inner is None:
            if system is None:
                open_systems.add("*")  # an unknown value set: we cannot say what it holds
            continue
        codes.update(dict.fromkeys(inner.codes))
        systems.update(inner.systems)
        open_systems.update(inner.open_systems)
    if system is None:
        return
    systems.add(system)
    if include.get("concept"):
        codes.update(dict.fromkeys((system, c["code"]) for c in include["concept"] if "code" in c))
        return
    code_system = registry.code_system(system)
    if include.get("filter") or code_system is None or code_system.get("content") not in (None, "complete"):
        open_systems.add(system)
        return
    _add_concepts(system, code_system.get("concept", ()), codes)


def _add_concepts(system: str, concepts, codes: dict) -> None:
    for concept in concepts:
        if "code" in concept:
            codes[(system, concept["code"])] = None
        if concept.get("concept"):
            _add_concepts(system, concept["concept"], codes)


def _add_contains(contains, codes: dict, systems: set) -> None:
    for item in contains:
        if "code" in item and "system" in item:
            codes[(item["system"], item["code"])] = None
            systems.add(item["system"])
        if item.get("contains"):
            _add_contains(item["contains"], codes, systems)


@dataclass(frozen=True)
class Binding:
    strength: str  # required | extensible
    value_set: str


def check_code(run, binding: Binding, code: object, path: str) -> None:
    """A `code` element (Patient.gender): the code alone must be in the value set."""
    expansion = expand(run.registry, binding.value_set)
    if expansion is None or type(code) is not str or code in expansion.bare_codes or expansion.open_systems:
        return
    if binding.strength == "required":
        run.add(
            ErrorCode.VAL_BAD_CODE,
            path,
            f"{show(code)} is not in its required value set ({expansion.listing()}). "
            "Translate source codes with a lookup table.",
        )


def check_codings(run, binding: Binding, codings: list, path: str, *, concept: bool) -> None:
    """Coding, CodeableConcept.coding or Quantity (system + code): one of them must be in the value set (required);
    for extensible, a code of one of the value set's own systems that is not in it is a warning."""
    expansion = expand(run.registry, binding.value_set)
    if expansion is None or "*" in expansion.open_systems:
        return
    for coding in codings:  # the common case first: a coding in the value set (both strings: hashable)
        plain = type(coding) is dict and type(coding.get("code")) is str and type(coding.get("system", "")) is str
        if plain and (coding.get("system"), coding["code"]) in expansion.codes:
            return
    pairs = [
        (coding.get("system"), coding.get("code"))
        for coding in codings
        if isinstance(coding, dict)
        and isinstance(coding.get("code"), str)
        and isinstance(coding.get("system", ""), str)
    ]
    if not pairs or any(expansion.has(system, code) for system, code in pairs):
        return
    what = "none of the codings is" if concept and len(pairs) > 1 else "the code is"
    shown = ", ".join(f"{system or '(no system)'}|{code}" for system, code in pairs[:3])
    if binding.strength == "required":
        run.add(
            ErrorCode.VAL_BAD_CODE,
            path,
            f"{shown}: {what} not in the required value set {binding.value_set} ({expansion.listing()}).",
        )
    elif any(system in expansion.systems for system, _ in pairs):
        run.add(
            ErrorCode.VAL_BAD_CODE,
            path,
            f"{shown}: {what} not in the extensible value set {binding.value_set}, although its system is.",
            severity="warning",
        )
