"""StructureDefinition snapshots compiled once into checkers: a TypeSpec per type, resource, backbone element and
profile, holding an ElementSpec per JSON key (choice types expanded: valueQuantity, valueString …).

The compiled form is plain objects with slots that the walker (walk.py) reads directly, so validating a resource is a
walk over its parsed JSON with dictionary look-ups, never a model object. Compilers are cached per registry (a layered
registry of uploaded profiles gets its own), each TypeSpec is compiled once per process.
"""

from __future__ import annotations

import re
import threading

from .invariants import Invariant, compile_invariants
from .primitives import build_check, is_primitive, type_code_of
from .slicing import Slicing, compile_slicing
from .terminology import Binding

PRIMITIVE, COMPLEX, RESOURCE = 0, 1, 2
CANONICAL_BASE = "http://hl7.org/fhir/StructureDefinition/"
BACKBONE_TYPES = frozenset({"BackboneElement", "Element"})
# Data types whose validity depends on their content alone (no %resource in their invariants), which repeat across
# resources (the same codes, systems, addresses): a value of one of them found valid once is not walked again.
MEMO_TYPES = frozenset(
    {
        "Coding",
        "CodeableConcept",
        "Identifier",
        "HumanName",
        "Address",
        "ContactPoint",
        "Period",
        "Quantity",
        "Meta",
        "Extension",  # and each extension definition (Compiler.profile_spec), when content_only says so
    }
)
BOUND_COMPLEX = frozenset({"Coding", "CodeableConcept", "Quantity"})
BOUND_PRIMITIVES = frozenset({"code", "string", "uri"})
CONTEXT = re.compile(r"%(resource|rootResource|context)\b|resolve\(")  # what makes an invariant read beyond its value
ROOT_ID_CHECK_TYPE = "id"  # Resource.id is a System.String in the snapshot, but an `id` in the spec


class TypeSpec:
    """A compiled complex type, resource, backbone element or profile."""

    __slots__ = (
        "always",
        "body",
        "constraints",
        "elements",
        "gen",
        "keyed",
        "memo",
        "name",
        "ready",
        "required",
        "resource_type",
        "shadow",
        "url",
    )

    def __init__(self, name: str, url: str = "", resource_type: str | None = None) -> None:
        self.name = name  # for messages: the type or path
        self.url = url
        self.elements: dict[str, ElementSpec] = {}
        self.required: tuple[tuple[str, tuple[str, ...], int], ...] = ()  # (element, keys that count, min)
        self.constraints: tuple[Invariant, ...] = ()
        self.resource_type = resource_type  # set on resources: the key `resourceType` is then allowed
        self.shadow: TypeSpec | None = None  # for `_element` objects of primitives
        self.ready = False
        # constraints split for the walk: those run on every object, and those run only when a member is present
        self.always: tuple[Invariant, ...] = ()
        self.keyed: tuple[tuple[str, tuple[Invariant, ...]], ...] = ()
        # MEMO_TYPES: serialised value → its findings as (code, path after the value's, message, severity), () for
        # a valid one. Generated walkers add them again (checkers._remember); the generic walk uses valid ones only.
        self.memo: dict[bytes, tuple] | None = None
        self.gen = None  # its walker (node, path, run), made on first use by checkers.py
        self.body = None  # with a memo: the walker after the memo look-up (node, path, run, key), checkers.py too

    def split_constraints(self) -> None:
        keyed: dict[str, list[Invariant]] = {}
        for invariant in self.constraints:
            if invariant.requires is not None:
                keyed.setdefault(invariant.requires, []).append(invariant)
        self.always = tuple(invariant for invariant in self.constraints if invariant.requires is None)
        self.keyed = tuple((key, tuple(items)) for key, items in keyed.items())


class ElementSpec:
    """One JSON key of a TypeSpec."""

    __slots__ = (
        "array",
        "binding",
        "check",
        "choice",
        "constraints",
        "extras",
        "fixed",
        "kind",
        "max",
        "name",
        "path",
        "pattern",
        "plain",
        "profiles",
        "rules",
        "shadow",
        "simple",
        "slicing",
        "spec",
        "targets",
        "text",
        "type_code",
        "valid",
    )

    def __init__(self, name: str, path: str, kind: int, type_code: str) -> None:
        self.name = name
        self.path = path  # the definition's path, for messages
        self.kind = kind
        self.type_code = type_code
        self.array = False
        self.max: int | None = None  # only when it is tighter than the JSON form says
        self.check = None  # primitives: value -> problem | None
        self.spec: TypeSpec | None = None  # complex types and backbone elements
        self.choice: str | None = None  # value[x] → "value": two keys of one choice is an error
        self.binding: Binding | None = None
        self.targets: frozenset[str] | None = None  # Reference: allowed target types (None: any)
        self.constraints: tuple[Invariant, ...] = ()
        self.fixed = None
        self.pattern = None
        self.slicing: Slicing | None = None
        self.profiles: tuple[str, ...] = ()  # type.profile: the value is also checked against these
        self.shadow: TypeSpec | None = None  # the `_key` object's spec (id, extension)
        self.valid: set = set()  # primitives: strings already found valid for this type (shared per type)
        self.rules = False  # primitives: a binding, fixed, pattern or constraint to check beyond the type
        self.extras = False  # complex: anything to check beyond walking the value (see walk.check_value)
        self.simple = False  # a single primitive with nothing but its type to check: the walk's fastest case
        self.plain = False  # a single complex value with nothing to check beyond its own members
        self.text = False

    def finish(self) -> ElementSpec:
        has_value_rules = self.binding is not None or self.fixed is not None or self.pattern is not None
        self.rules = has_value_rules or bool(self.constraints)
        single = not self.array and self.max != 0
        self.simple = self.kind == PRIMITIVE and single and not self.rules and self.choice is None
        self.extras = self.rules or bool(self.profiles) or self.type_code in ("Reference", "Extension")
        self.plain = self.kind == COMPLEX and single and not self.extras and self.choice is None
        self.text = self.type_code in ("string", "markdown")  # valid when a non-empty string within 1 MB
        return self


class Compiler:
    """Compiles the StructureDefinitions of one registry, each once."""

    def __init__(self, registry) -> None:
        self.registry = registry
        self.types: dict[str, TypeSpec] = {}
        self.profiles: dict[str, TypeSpec | None] = {}
        self.extensions: dict[str, TypeSpec | None] = {}  # extension url → its definition's spec (None: unknown)
        self.resource_types = registry.resource_types()
        self.primitive_checks: dict[str, object] = {}
        self.valid_strings: dict[str, set[str] | frozenset] = {}  # per primitive type: strings that passed
        self.relative_references: dict[str, str] = {}  # Type/id reference → Type (references.py)
        self.lock = threading.RLock()
        self.generate = True  # False: walk with walk.generic_walk instead of generated code (tests compare them)

    def primitive(self, type_code: str):
        check = self.primitive_checks.get(type_code)
        if check is None:
            check = self.primitive_checks[type_code] = build_check(type_code, self.registry)
            # string and markdown are checked in less time than a set insert takes: nothing to remember
            self.valid_strings[type_code] = frozenset() if type_code in ("string", "markdown") else set()
        return check

    def forget_values(self) -> None:
        """Empty the caches of values found valid (strings per primitive type, Type/id references, memoised data
        types and extensions): a benchmark starts each pass cold with it; validation never needs it."""
        for strings in self.valid_strings.values():
            if isinstance(strings, set):
                strings.clear()
        self.relative_references.clear()
        for spec in (*self.types.values(), *self.profiles.values()):
            if spec is not None and spec.memo is not None:
                spec.memo.clear()

    def type_spec(self, type_code: str) -> TypeSpec | None:
        """The base spec of a complex type or resource by name (Patient, HumanName)."""
        found = self.types.get(type_code)
        if found is not None and found.ready:
            return found
        # Another thread may be compiling it: wait for the lock. This thread's own recursion (Extension.extension)
        # gets the unfinished spec, which it only stores.
        with self.lock:
            found = self.types.get(type_code)
            if found is None:
                definition = self.registry.structure(type_code) or self.registry.structure(CANONICAL_BASE + type_code)
                if definition is None or not definition.get("snapshot"):
                    return None
                found = self._compile(definition, self.types, type_code)
                if type_code in MEMO_TYPES:
                    found.memo = {}
        return found

    def profile_spec(self, url: str) -> TypeSpec | None:
        """A profile (or extension definition) by canonical URL; None when the registry does not have it."""
        url = url.split("|", 1)[0]
        found = self.profiles.get(url, self)
        if found is None or (found is not self and found.ready):
            return found
        definition = self.registry.structure(url)
        with self.lock:
            if url not in self.profiles:
                spec = None
                if definition is not None and definition.get("snapshot"):
                    if definition.get("derivation") != "constraint":
                        spec = self.type_spec(definition.get("type") or "")
                    else:
                        spec = self._compile(definition, self.profiles, url)
                        if definition.get("type") == "Extension" and content_only(spec, self):
                            spec.memo = {}  # an extension definition: remembered as the Extension type is
                self.profiles[url] = spec
        return self.profiles[url]

    def extension_spec(self, url: str) -> TypeSpec | None:
        """An extension definition by its url; None for relative urls (sub-extensions of a complex one) and others."""
        found = self.extensions.get(url, self)
        if found is self:
            spec = self.profile_spec(url) if ":" in url else None
            found = spec if spec is not None and spec.name == "Extension" and spec.url else None
            self.extensions[url] = found
        return found

    def _compile(self, definition: dict, cache: dict, key: str) -> TypeSpec:
        elements = definition["snapshot"]["element"]
        tree = SnapshotTree(elements)
        root = elements[0]
        kind = definition.get("kind")
        type_name = definition.get("type") or root["path"]
        spec = TypeSpec(type_name, definition.get("url", ""), type_name if kind == "resource" else None)
        cache[key] = spec  # before filling: recursive types (Extension.extension, Identifier.assigner) find it
        _Builder(self, tree, definition).fill(spec, root, base=None)
        return spec


class SnapshotTree:
    """Children and slices of each element, by element id."""

    def __init__(self, elements: list[dict]) -> None:
        self.children: dict[str, list[dict]] = {}
        self.slices: dict[str, list[dict]] = {}
        self.by_id: dict[str, dict] = {}
        for element in elements[1:]:
            element_id = element.get("id") or element["path"]
            self.by_id[element_id] = element
            parent, _, last = element_id.rpartition(".")
            if ":" in last:
                name, _, _slice = last.partition(":")
                owner = f"{parent}.{name}" if parent else name
                self.slices.setdefault(owner, []).append(element)
            else:
                self.children.setdefault(parent, []).append(element)
        self.by_id[elements[0].get("id") or elements[0]["path"]] = elements[0]


class _Builder:
    def __init__(self, compiler: Compiler, tree: SnapshotTree, definition: dict) -> None:
        self.compiler = compiler
        self.tree = tree
        self.definition = definition
        self.backbones: dict[str, TypeSpec] = {}  # by element id, for contentReference
        self.nested: set[int] = set()  # ids of TypeSpecs built from an element here: its constraints are on them
        self.is_resource = definition.get("kind") == "resource"

    def fill(self, spec: TypeSpec, element: dict, *, base: TypeSpec | None) -> None:
        element_id = element.get("id") or element["path"]
        self.backbones[element_id] = spec
        if base is not None:
            spec.elements.update(base.elements)
            spec.constraints = base.constraints
        required = {label: (keys, minimum) for label, keys, minimum in (base.required if base else ())}
        for child in self.tree.children.get(element_id, ()):
            name = child["path"].rsplit(".", 1)[-1]
            is_root_id = self.is_resource and name == "id" and element is self.tree_root()
            specs = self.element_specs(child, name, is_root_id=is_root_id)
            for old in [key for key, value in spec.elements.items() if value.choice == name.removesuffix("[x]")]:
                del spec.elements[old]
            spec.elements.pop(name, None)
            for item in specs:
                spec.elements[item.name] = item
            keys = tuple(item.name for item in specs)
            keys += tuple("_" + item.name for item in specs if item.kind == PRIMITIVE)
            minimum = child.get("min", 0)
            required.pop(name, None)
            if minimum and keys:
                required[name] = (keys, minimum)
        spec.required = tuple((label, keys, minimum) for label, (keys, minimum) in required.items())
        own = compile_invariants(element.get("constraint", ()), element["path"])
        if own:
            keys = {invariant.key for invariant in spec.constraints}
            spec.constraints = spec.constraints + tuple(item for item in own if item.key not in keys)
        spec.split_constraints()
        spec.ready = True

    def tree_root(self) -> dict:
        return self.definition["snapshot"]["element"][0]

    def element_specs(self, element: dict, name: str, *, is_root_id: bool) -> list[ElementSpec]:
        path = element["path"]
        maximum = element.get("max", "*")
        base_max = (element.get("base") or {}).get("max", maximum)
        array = base_max != "1" and base_max != "0"
        if "contentReference" in element:
            target = element["contentReference"].split("#", 1)[-1]
            spec = ElementSpec(name, path, COMPLEX, "BackboneElement")
            spec.spec = self.backbones.get(target) or self._backbone_by_id(target)
            return [self._common(spec, element, array, maximum)]
        types = element.get("type") or []
        choice = name.endswith("[x]")
        stem = name[:-3]
        slices_by_type = {}
        if choice:
            element_id = element.get("id") or path
            for piece in self.tree.slices.get(element_id, ()):
                slices_by_type[piece.get("sliceName", "")] = piece
        specs = []
        for entry in types:
            type_code = "id" if is_root_id else type_code_of(entry)
            key = stem + type_code[0].upper() + type_code[1:] if choice else name
            source = slices_by_type.get(key, element)
            spec = self._typed(key, path, type_code, entry, source)
            if choice:
                spec.choice = stem
            specs.append(self._common(spec, source, array, maximum))
        return specs

    def _typed(self, key: str, path: str, type_code: str, entry: dict, element: dict) -> ElementSpec:
        compiler = self.compiler
        element_id = element.get("id") or element["path"]
        has_children = bool(self.tree.children.get(element_id))
        if is_primitive(type_code):
            spec = ElementSpec(key, path, PRIMITIVE, type_code)
            spec.check = compiler.primitive(type_code)
            spec.valid = compiler.valid_strings[type_code]
            shadow_base = compiler.type_spec("Element")
            if has_children:
                shadow = TypeSpec(f"{path} (extensions)")
                self.fill(shadow, element, base=shadow_base)
                shadow.elements.pop("value", None)
                shadow.required = tuple(item for item in shadow.required if item[0] != "value")
                spec.shadow = shadow
            else:
                spec.shadow = shadow_base
            return spec
        if type_code == "Resource" or type_code in self.compiler.resource_types:
            spec = ElementSpec(key, path, RESOURCE, type_code)
            return spec
        spec = ElementSpec(key, path, COMPLEX, type_code)
        base = None if type_code in BACKBONE_TYPES else compiler.type_spec(type_code)
        if has_children or base is None:
            nested = TypeSpec(path)
            self.nested.add(id(nested))
            self.fill(nested, element, base=base)
            spec.spec = nested
        else:
            spec.spec = base
        if type_code == "Reference":
            spec.targets = _targets(compiler.registry, entry.get("targetProfile"))
        spec.profiles = tuple(entry.get("profile", ()))
        return spec

    def _backbone_by_id(self, element_id: str) -> TypeSpec:
        element = self.tree.by_id.get(element_id)
        spec = TypeSpec(element_id)
        if element is not None:
            self.fill(spec, element, base=None)
        return spec

    def _common(self, spec: ElementSpec, element: dict, array: bool, maximum: str) -> ElementSpec:
        spec.array = array
        if array and maximum not in ("*", None):
            spec.max = int(maximum)
        if maximum == "0":
            spec.max = 0
        binding = element.get("binding")
        bindable = spec.type_code in BOUND_COMPLEX or spec.type_code in BOUND_PRIMITIVES
        if bindable and binding and binding.get("strength") in ("required", "extensible") and binding.get("valueSet"):
            spec.binding = Binding(binding["strength"], binding["valueSet"].split("|", 1)[0])
        own_type_keys = {item.key for item in (spec.spec.constraints if spec.spec is not None else ())}
        if spec.spec is None or id(spec.spec) not in self.nested:
            spec.constraints = tuple(
                item
                for item in compile_invariants(element.get("constraint", ()), element["path"])
                if item.key not in own_type_keys
            )
        for key, value in element.items():
            if key.startswith("fixed"):
                spec.fixed = value
            elif key.startswith("pattern"):
                spec.pattern = value
        element_id = element.get("id") or element["path"]
        if ("slicing" in element or self.tree.slices.get(element_id)) and not spec.choice:
            spec.slicing = compile_slicing(self, element, self.tree.slices.get(element_id, ()))
        return spec.finish()


def content_only(spec: TypeSpec, compiler: Compiler) -> bool:
    """Whether a value's validity against spec depends on the value alone (what a memo needs; references are
    left to the memo's key test): no invariant anywhere below it reads the resource or its context (%ucum and
    the like are constants) or resolves, no resource inside, no slice told apart by a profile."""
    seen: set[int] = set()
    pending = [spec]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        elements = list(current.elements.values())
        for element in elements:
            if element.slicing is not None:
                if any(item.kind == "profile" for item in element.slicing.discriminators):
                    return False
                elements.extend(piece.element for piece in element.slicing.slices)
        invariants = [*current.constraints, *(item for element in elements for item in element.constraints)]
        if any(CONTEXT.search(item.expression) for item in invariants):
            return False
        if any(element.kind == RESOURCE for element in elements):
            return False
        pending += [element.spec for element in elements] + [element.shadow for element in elements]
        pending += [compiler.profile_spec(url) for element in elements for url in element.profiles]
        pending.append(current.shadow)
    return True


def _targets(registry, profiles) -> frozenset[str] | None:
    if not profiles:
        return None
    names = set()
    for url in profiles:
        if url.startswith(CANONICAL_BASE) and "/" not in url[len(CANONICAL_BASE) :]:
            name = url[len(CANONICAL_BASE) :]
        else:
            definition = registry.structure(url)
            name = definition.get("type") if definition else None
        if not name or name == "Resource":
            return None
        names.add(name)
    return frozenset(names)


def compiler_for(registry) -> Compiler:
    found = registry.__dict__.get("_compiler")
    if found is None:
        found = registry.__dict__.setdefault("_compiler", Compiler(registry))
    return found
