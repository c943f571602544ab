"""Generated walkers: one Python function per TypeSpec, written as source and compiled once per process.

The generic walk (walk.py) pays, for every member of every object, a dictionary look-up of its ElementSpec and a
series of attribute tests to find what kind of member it is. A generated walker knows its type's members: it finds
the member's index in one look-up and branches to code written for that member alone, with the valid-string cache,
the regex, the nested type's walker, the required members and the invariants bound as constants. It handles the
common cases (a valid primitive, a plain or bound complex value, a Reference, an extension with a known definition)
and hands anything else, every finding included, to the same functions the generic walk uses (walk.member,
member_value, check_value, _primitive), member by member in the object's own order, so the findings are the same
and come in the same order. A memoised type's walker (compile.MEMO_TYPES, extension definitions) also remembers the
findings of a value that had some, relative to its path, and adds them again where the same value recurs (an
Identifier whose type code is outside its extensible value set); the generic walk remembers valid values only.
tests/engine/validation/test_checkers.py compares the two on the whole test set.

With the other changes of the same commits (memoised extensions, remembered references, the base64 check), against
the validator before them, bench/validate.py measured 0.55-0.57x its time with cold caches on the corpus as it is,
0.70x on its distinct resources, 0.27x on the 130 big Patients (~40 extensions each), 0.3x against US Core Patient.
"""

from __future__ import annotations

import itertools
import linecache

from orjson import dumps

from mappings.engine.errors import ErrorCode

from .compile import COMPLEX, PRIMITIVE, ElementSpec, TypeSpec
from .primitives import MAX_STRING, calendar_problem
from .references import check_reference
from .terminology import check_codings, expand
from .walk import (
    LOCAL,
    MEMO_KEY_SIZE,
    MEMO_SIZE,
    URN,
    VALID_CACHE_SIZE,
    _choice,
    _invariants,
    _primitive,
    _shadow,
    broken,
    check_value,
    generic_walk,
    install,
    member,
    member_value,
    required,
)

INVARIANT = ErrorCode.VAL_INVARIANT
INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
BRANCHES = 3  # members compared in a row before the index is split in halves


def generate(spec: TypeSpec, compiler):
    """The walker (node, path, run) for spec: generated, or the generic walk when the compiler asks for it."""
    if not compiler.generate:
        if spec.memo is not None:
            spec.body = lambda node, path, run, key: generic_walk(node, spec, path, run)
        return lambda node, path, run: generic_walk(node, spec, path, run)
    source, names = _Source(spec, compiler).build()
    filename = f"<walker {next(_numbers)} of {spec.url or spec.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show the line
    exec(compile(source, filename, "exec"), names)  # our own source, from the compiled spec
    walker = names["walker"]
    walker.source = source  # for a reader (and a test) to see what runs
    if spec.memo is not None:
        spec.body = names["body"]  # the walk of a value whose key its caller looked up in the memo already
    return walker


_numbers = itertools.count(1)


def _remember(memo: dict, key: bytes, found: list[tuple], path: str) -> None:
    """What walking a value found, with paths relative to the value's, to add again where the same value recurs.
    Not when a message names a path (two keys of a choice: it would name this one), nor an invariant's finding:
    fhirpathpy's verdict can change (an expression it failed on once is skipped from then on)."""
    if all(code is not INVARIANT and at.startswith(path) and path not in message for code, at, message, _ in found):
        memo[key] = tuple((code, at[len(path) :], message, severity) for code, at, message, severity in found)


def _first_call(spec: TypeSpec):
    # Stands for a nested type's walker until its first value is met: generating every type reachable from a
    # resource up front would generate most of FHIR.
    def first(node: dict, path: str, run) -> None:
        install(spec, run.compiler)(node, path, run)

    return first


def _first_body(spec: TypeSpec):
    def first(node: dict, path: str, run, key: bytes) -> None:
        install(spec, run.compiler)
        spec.body(node, path, run, key)

    return first


class _Source:
    def __init__(self, spec: TypeSpec, compiler) -> None:
        self.spec = spec
        self.compiler = compiler
        self.names: dict[str, object] = {
            "SPEC": spec,
            "dumps": dumps,
            "member": member,
            "member_value": member_value,
            "primitive": _primitive,
            "check_value": check_value,
            "shadow": _shadow,
            "required": required,
            "invariants": _invariants,
            "broken": broken,
            "choice": _choice,
            "install": install,
            "check_reference": check_reference,
            "check_codings": check_codings,
            "calendar_problem": calendar_problem,
            "MAX_STRING": MAX_STRING,
            "MEMO_SIZE": MEMO_SIZE,
            "MEMO_KEY_SIZE": MEMO_KEY_SIZE,
            "LOCAL": LOCAL,
            "remember": _remember,
            "URN": URN,
            "CACHE": VALID_CACHE_SIZE,
            "INF": float("inf"),
        }
        self.bound: dict[int, str] = {}

    def const(self, value: object, prefix: str) -> str:
        """A global name of the generated module for value (one name per object)."""
        name = self.bound.get(id(value))
        if name is None:
            name = self.bound[id(value)] = f"{prefix}{len(self.names)}"
            self.names[name] = value
        return name

    def walker_of(self, spec: TypeSpec) -> str:
        if spec.gen is None:
            spec.gen = _first_call(spec)
        if spec.memo is not None and spec.body is None:
            spec.body = _first_body(spec)
        return self.const(spec, "S")

    def descend(self, spec: TypeSpec, item: str, where: str) -> list[str]:
        """Lines walking item (a non-empty object) against spec at where; a memoised type's memo is looked up here,
        so that a value seen before costs no call and no path."""
        inner = self.walker_of(spec)
        if spec.memo is None:
            return [f"{inner}.gen({item}, {where}, run)"]
        memo = self.const(spec.memo, "MEMO")
        return [
            "try:",
            f"    inner_key = dumps({item})",
            "except TypeError:",
            "    inner_key = LOCAL",
            f"inner_found = {memo}.get(inner_key)",
            "if inner_found is None:",
            f"    {inner}.body({item}, {where}, run, inner_key)",
            "elif inner_found:",
            f"    inner_path = {where}",
            "    for code, at, message, severity in inner_found:",
            "        run.add(code, inner_path + at, message, severity=severity)",
        ]

    def build(self) -> tuple[str, dict]:
        spec = self.spec
        leaves: list[list[str]] = []
        index: dict[str, int] = {}
        for key, element in spec.elements.items():
            index[key] = len(leaves)
            leaves.append(self.leaf(key, element))
        shadows = ["_" + key for key, element in spec.elements.items() if element.kind == PRIMITIVE]
        if shadows:
            for key in shadows:
                index[key] = len(leaves)
            leaves.append(["shadow(node, key, value, SPEC, path, run)"])
        if spec.resource_type is not None:
            index["resourceType"] = len(leaves)
            leaves.append(["continue"])
        memo = self.const(spec.memo, "MEMO") if spec.memo is not None else None
        prologue = []
        if memo:  # a value seen before, by its serialisation (walk.generic_walk): its findings again, if any
            prologue = [
                "    try:",
                "        memo_key = dumps(node)",
                "    except TypeError:",
                "        memo_key = LOCAL",
                f"    found = {memo}.get(memo_key)",
                "    if found is not None:",
                "        for code, at, message, severity in found:",
                "            run.add(code, path + at, message, severity=severity)",
                "        return",
            ]
        lines = ["    start = len(run.trail)"] if memo else []
        lines += [
            "    choices = None",
            "    for key, value in node.items():",
            "        try:",
            f"            i = {self.const(index, 'INDEX')}[key]",
            "        except KeyError:",
            "            choices = member(node, key, value, None, SPEC, path, run, choices)",
            "            continue",
        ]
        lines += _tree(leaves, 0, len(leaves), " " * 8) if leaves else ["        pass"]
        lines += self.finish()
        if memo:
            lines += [
                f"    room = len(memo_key) <= MEMO_KEY_SIZE and len({memo}) < MEMO_SIZE",
                "    if LOCAL not in memo_key and URN not in memo_key and room:",
                "        if len(run.trail) == start:",
                f"            {memo}[memo_key] = ()",
                "        else:",
                f"            remember({memo}, memo_key, run.trail[start:], path)",
            ]
        source = ["def walker(node, path, run):", *prologue, *lines]
        if memo:  # the same walk for a caller that looked the memo up (descend): no key to make, no look-up
            source += ["", "", "def body(node, path, run, memo_key):", *lines]
        return "\n".join(source) + "\n", self.names

    def finish(self) -> list[str]:
        """walk.finish, unrolled: required members, the type's invariants, those keyed by a member."""
        spec = self.spec
        lines = []
        if spec.required:
            if any(minimum != 1 for _, _, minimum in spec.required):
                lines.append("    required(node, SPEC, path, run)")
            else:  # each present with a value that counts (an empty array counts 0)
                tests = [
                    "(" + " or ".join(f"({key!r} in node and node[{key!r}] != [])" for key in keys) + ")"
                    for _, keys, _ in spec.required
                ]
                lines += [f"    if not ({' and '.join(tests)}):", "        required(node, SPEC, path, run)"]
        if spec.always or spec.keyed:
            lines.append("    resource = run.resource")
        for invariant in spec.always:  # through Invariant.holds: its fhirpathpy fallback (and the tests' hook)
            name = self.const(invariant, "I")
            lines += [f"    if not {name}.holds(node, resource):", f"        broken({name}, path, run)"]
        for key, invariants in spec.keyed:
            lines += [f"    if {key!r} in node:", f"        invariants({self.const(invariants, 'K')}, node, path, run)"]
        return lines

    def leaf(self, key: str, element: ElementSpec) -> list[str]:
        """The code for one member: its fast cases (each ends in `continue`), then member_value for any other."""
        name = self.const(element, "E")
        lines = []
        if element.choice is not None:
            lines += [
                "if choices is None:",
                f"    choices = {{{element.choice!r}: key}}",
                "else:",
                f"    choices = choice(choices, {element.choice!r}, key, path, run)",
            ]
        if element.max != 0 and key.isidentifier():
            lines += self.array(key, element, name) if element.array else self.single(key, element, name)
        lines.append(f"member_value(node, key, value, {name}, SPEC, path, run)")
        return lines

    def single(self, key: str, element: ElementSpec, name: str) -> list[str]:
        if element.kind == PRIMITIVE:
            return self.primitive("value", element)
        where = f'f"{{path}}.{key}"'
        if element.kind == COMPLEX and not element.extras:
            return [
                'if type(value) is dict and (len(value) > 1 or "id" not in value):',
                *("    " + line for line in self.descend(element.spec, "value", where)),
                "    continue",
            ]
        body = self.extras("value", where, element)
        if body is None:
            return [
                "if type(value) is not list:",
                f"    check_value(value, {name}, {where}, run)",
                "    continue",
            ]
        return [
            'if type(value) is dict and (len(value) > 1 or (value and "id" not in value)):',
            *("    " + line for line in body),
            "    continue",
        ]

    def array(self, key: str, element: ElementSpec, name: str) -> list[str]:
        if element.slicing is not None:
            return []
        where = f'f"{{path}}.{key}[{{index}}]"'
        if element.kind == PRIMITIVE:
            body = [*self.primitive("item", element), f"primitive(node, key, item, {name}, {where}, run, index)"]
        elif element.kind == COMPLEX and not element.extras:
            body = [
                'if type(item) is dict and (len(item) > 1 or (item and "id" not in item)):',
                *("    " + line for line in self.descend(element.spec, "item", where)),
                "    continue",
                f"check_value(item, {name}, {where}, run)",
            ]
        else:
            extras = self.extras("item", where, element)
            body = []
            if extras is not None:
                body += [
                    'if type(item) is dict and (len(item) > 1 or (item and "id" not in item)):',
                    *("    " + line for line in extras),
                    "    continue",
                ]
            body.append(f"check_value(item, {name}, {where}, run)")
        size = f" and len(value) <= {element.max}" if element.max is not None else ""
        return [
            f"if type(value) is list and value{size}:",
            "    for index, item in enumerate(value):",
            *("        " + line for line in body),
            "    continue",
        ]

    def primitive(self, item: str, element: ElementSpec) -> list[str]:
        """Lines that `continue` when item is a valid value of the primitive type and meets the element's binding
        and fixed or pattern string (any other goes to _primitive, which reports it, or remembers a valid string)."""
        check, code = element.check, element.type_code
        rules = self.string_rules(item, element)
        if rules is None:
            return []
        if element.text:
            return [f"if type({item}) is str and 0 < len({item}) <= MAX_STRING{rules}:", "    continue"]
        if getattr(check, "fullmatch", None) is not None and type(element.valid) is set:
            valid, match = self.const(element.valid, "V"), self.const(check.fullmatch, "M")
            calendar = f" and calendar_problem({item}) is None" if check.calendar else ""
            return [
                f"if type({item}) is str{rules}:",
                f"    if {item} in {valid}:",
                "        continue",
                f"    if 0 < len({item}) <= MAX_STRING and {match}({item}) is not None{calendar}:",
                f"        if len({valid}) < CACHE:",
                f"            {valid}.add({item})",
                "        continue",
            ]
        if element.rules:
            return []
        if code == "boolean":
            return [f"if {item} is True or {item} is False:", "    continue"]
        if code in INTEGER_TYPES and getattr(check, "bounds", None):
            low, high = check.bounds
            return [f"if type({item}) is int and {low} <= {item} <= {high}:", "    continue"]
        if code == "decimal":
            return [f"if type({item}) is int or (type({item}) is float and -INF < {item} < INF):", "    continue"]
        return []

    def string_rules(self, item: str, element: ElementSpec) -> str | None:
        """walk._primitive_rules for a string, as a condition to append (" and …"); "" when there are none, None
        when they are more than a binding and a fixed or pattern string (then _primitive checks every value)."""
        if not element.rules:
            return ""
        if element.constraints:
            return None
        tests = ""
        if element.binding is not None:
            expansion = expand(self.compiler.registry, element.binding.value_set)
            # check_code reports only a code outside a required value set whose codes it knows
            if element.binding.strength == "required" and expansion is not None and not expansion.open_systems:
                tests += f" and {item} in {self.const(expansion.bare_codes, 'C')}"
        for wanted in (element.fixed, element.pattern):
            if wanted is not None and type(wanted) is not str:
                return None
            if wanted is not None:
                tests += f" and {item} == {wanted!r}"
        return tests

    def extras(self, item: str, where: str, element: ElementSpec) -> list[str] | None:
        """check_value's work for a non-empty object of a Reference, a bound code type or an extension, as lines
        (where: the path's expression); None for anything else (check_value itself then runs)."""
        if element.kind != COMPLEX or element.profiles or element.constraints:
            return None
        if element.fixed is not None or element.pattern is not None:
            return None
        code = element.type_code
        inner = self.walker_of(element.spec)
        if code == "Extension" and element.binding is None and element.spec is self.compiler.types.get("Extension"):
            # an extension with a known definition is walked against it alone (see walk.check_value)
            find = self.const(self.compiler.extension_spec, "X")
            return [
                f"where = {where}",
                f"url = {item}.get('url')",
                f"spec = {find}(url) if type(url) is str else None",
                f"spec = {inner} if spec is None else spec",
                f"(spec.gen or install(spec, run.compiler))({item}, where, run)",
            ]
        if code == "Reference" and element.binding is None:
            targets = self.const(element.targets, "T")
            walk = [f"{inner}.gen({item}, where, run)"]
            if _bare_reference(element.spec):  # {"reference": "…"} alone: nothing for its walker to find
                walk = [
                    f"reference = {item}.get('reference')",
                    f"if len({item}) != 1 or type(reference) is not str or not 0 < len(reference) <= MAX_STRING:",
                    "    " + walk[0],
                ]
            return [f"where = {where}", *walk, f"check_reference(run, {item}, where, {targets})"]
        if element.binding is not None and code in ("CodeableConcept", "Coding", "Quantity"):
            binding = self.const(element.binding, "B")
            expansion = expand(self.compiler.registry, element.binding.value_set)
            walk = self.descend(element.spec, item, where)
            if expansion is None or "*" in expansion.open_systems:  # check_codings has nothing to say
                return walk
            pairs = self.const(expansion.codes, "C")
            found = [  # check_codings' common case, a coding in the value set; anything else it does itself
                "for coding in codings:",
                "    if type(coding) is dict and type(coding.get('code')) is str and "
                f"type(coding.get('system', '')) is str and (coding.get('system'), coding['code']) in {pairs}:",
                "        break",
                "else:",
            ]
            if code == "CodeableConcept":
                return [
                    *walk,
                    f"codings = {item}.get('coding')",
                    "if type(codings) is list:",
                    *("    " + line for line in found),
                    f"        check_codings(run, {binding}, codings, {where}, concept=True)",
                ]
            return [
                *walk,
                f"codings = [{item}]",
                *found,
                f"    check_codings(run, {binding}, codings, {where}, concept=False)",
            ]
        return None


def _bare_reference(spec: TypeSpec) -> bool:
    """Whether {"reference": <a non-empty string>} is valid against spec whatever the string (R4's Reference)."""
    element = spec.elements.get("reference")
    plain = element is not None and element.simple and element.text
    return plain and not (spec.required or spec.always or spec.keyed or spec.memo is not None)


def _tree(leaves: list[list[str]], low: int, high: int, indent: str) -> list[str]:
    """Branch on the member's index: a few comparisons in a row, else halves (log2 comparisons for big types)."""
    if high - low == 1:
        return [indent + line for line in leaves[low]]
    lines = []
    if high - low <= BRANCHES:
        for number in range(low, high):
            test = "else:" if number == high - 1 else f"{'if' if number == low else 'elif'} i == {number}:"
            lines.append(indent + test)
            lines += [indent + "    " + line for line in leaves[number]]
        return lines
    middle = (low + high) // 2
    lines.append(f"{indent}if i < {middle}:")
    lines += _tree(leaves, low, middle, indent + "    ")
    lines.append(f"{indent}else:")
    lines += _tree(leaves, middle, high, indent + "    ")
    return lines
