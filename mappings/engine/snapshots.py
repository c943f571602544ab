"""Snapshot generation: a profile's full element list from its differential and its base's snapshot.

A StructureDefinition with `derivation: constraint` states only what it changes (the differential); validators and
the studio's element tree need every element (the snapshot). `generate_snapshot(sd, registry)` walks the base's
snapshot and applies each differential element in order, found by its id:

- constraints replace or narrow what the base says (min, max, type, binding, fixed/pattern, mustSupport, short,
  slicing, maxLength) and invariants are added; a max wider than the base's, a min lower than the base's or a type
  the base does not allow is refused;
- an element below a complex type the base snapshot does not unfold (`Observation.code.coding`) is reached by
  unfolding that type's own snapshot under it (or the profile named in its type, or the element a
  `contentReference` points at);
- a renamed choice (`Observation.valueQuantity`) is the base's `value[x]` narrowed to that type, the id of the
  element kept as the base's (`Observation.value[x]`), as the R4 publisher writes it;
- a slice (`sliceName`, id `…component:SystolicBP`) is a copy of the sliced element and its children as the base
  defines them, placed after the sliced element's other slices; its element must be sliced (`slicing`), except
  `extension`/`modifierExtension` (sliced by url by definition) and a choice's type slices. An extension slice
  names its definition in `type.profile`, which must be known to the registry.

Everything is pure data in and out: the registry answers `structure(url)`; elements are the registry's (stripped)
ElementDefinitions. A base without a snapshot gets one first, so a chain of uploaded differentials works.
"""

from __future__ import annotations

import copy
import re

CONSTRAINT_KEYS = ("min", "max", "binding", "mustSupport", "short", "slicing", "maxLength", "isModifier")
EXTENSION_PATH = re.compile(r"(^|\.)(extension|modifierExtension)$")
DEFAULT_URL_SLICING = {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}
TYPE_SLICING = {"discriminator": [{"type": "type", "path": "$this"}], "rules": "open"}
MAX_BASE_DEPTH = 20  # profiles on profiles: a longer chain is a cycle


class SnapshotError(ValueError):
    """The differential cannot be applied to its base; the message names the element and what to change."""


def generate_snapshot(sd: dict, registry, *, _depth: int = 0) -> list[dict]:
    """The snapshot elements of `sd` (a constraint StructureDefinition with a differential) on its base's snapshot.
    Raises SnapshotError with a message a person can act on."""
    check_shape(sd)
    if sd.get("derivation", "constraint") != "constraint":
        raise SnapshotError("Only profiles (derivation 'constraint') can have their snapshot generated.")
    base_url = sd.get("baseDefinition")
    if not base_url:
        raise SnapshotError("The StructureDefinition has no baseDefinition to build its snapshot on.")
    base = registry.structure(base_url)
    if base is None:
        raise SnapshotError(f"Unknown base definition {base_url}: upload it (or its package) first.")
    base_elements = snapshot_of(base, registry, _depth=_depth + 1)
    differential = sd.get("differential", {}).get("element", [])
    builder = _Builder(base_elements, registry)
    for element in _with_ids(differential):
        builder.apply(element)
    return builder.elements


def snapshot_of(sd: dict, registry, *, _depth: int = 0) -> list[dict]:
    """`sd`'s snapshot as given, or generated from its differential when it has none."""
    if _depth > MAX_BASE_DEPTH:
        raise SnapshotError(f"The chain of base definitions above {sd.get('url')} is too long (a cycle?).")
    given = sd.get("snapshot", {}).get("element")
    if given:
        return given
    if not sd.get("differential"):
        raise SnapshotError(f"{sd.get('url')} has neither a snapshot nor a differential.")
    return generate_snapshot(sd, registry, _depth=_depth)


# --- ids ------------------------------------------------------------------------------------------------------------


def _split_id(element_id: str) -> list[tuple[str, str | None]]:
    """`Observation.component:SystolicBP.code` → [(Observation, None), (component, SystolicBP), (code, None)]."""
    parts = []
    for segment in element_id.split("."):
        name, _, slice_name = segment.partition(":")
        parts.append((name, slice_name or None))
    return parts


def _with_ids(differential: list[dict]) -> list[dict]:
    """The differential's elements, each with an id. R4 ids are usual but optional: without one, an element's id is
    its path, placed under the slice most recently opened above it (that is how slices are written in order)."""
    open_slices: dict[str, str] = {}  # path of a sliced element → id of its slice being written
    result = []
    for element in differential:
        path = element.get("path")
        if not path:
            raise SnapshotError(f"A differential element has no path: {element.get('id') or element}")
        if element.get("id"):
            result.append(element)
            if element.get("sliceName"):
                open_slices[path] = element["id"]
            continue
        element_id = path
        for sliced_path in sorted(open_slices, key=len, reverse=True):
            if path.startswith(sliced_path + "."):
                element_id = open_slices[sliced_path] + path[len(sliced_path) :]
                break
        if element.get("sliceName"):
            element_id = f"{element_id}:{element['sliceName']}"
            open_slices[path] = element_id
        elif path in open_slices:
            del open_slices[path]  # the sliced element itself again: its slices are behind us
        result.append({**element, "id": element_id})
    return result


def _choice_type(name: str, candidates: list[str]) -> tuple[str, str] | None:
    """`valueQuantity` against names like `value[x]` → (`value[x]`, `Quantity`)."""
    for candidate in candidates:
        if candidate.endswith("[x]"):
            stem = candidate[:-3]
            if name.startswith(stem) and len(name) > len(stem) and name[len(stem)].isupper():
                return candidate, name[len(stem) :]
    return None


def _type_code(element: dict, wanted: str) -> str | None:
    """The element's type code that a renamed choice names (`Quantity`, `String` → `string`)."""
    for kind in element.get("type", []):
        if kind.get("code", "").lower() == wanted.lower():
            return kind["code"]
    return None


# --- the builder ----------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, base_elements: list[dict], registry) -> None:
        self.registry = registry
        self.elements = [copy.deepcopy(element) for element in base_elements]
        for element in self.elements:
            element.setdefault("id", element.get("path", ""))
        self.original = {element["id"]: copy.deepcopy(element) for element in self.elements}
        self.root = self.elements[0]["id"] if self.elements else ""
        self._index: dict[str, int] | None = None

    # the element list, indexed by id
    def position(self, element_id: str) -> int | None:
        if self._index is None:
            self._index = {element["id"]: i for i, element in enumerate(self.elements)}
        return self._index.get(element_id)

    def insert(self, at: int, new: list[dict]) -> None:
        self.elements[at:at] = new
        self._index = None

    def children_end(self, element_id: str) -> int:
        """The position just after `element_id` and everything under it (children and slices)."""
        at = self.position(element_id)
        assert at is not None
        end = at + 1
        while end < len(self.elements):
            other = self.elements[end]["id"]
            if not other.startswith((element_id + ".", element_id + ":")):
                break
            end += 1
        return end

    def has_children(self, element_id: str) -> bool:
        at = self.position(element_id)
        return (
            at is not None and at + 1 < len(self.elements) and self.elements[at + 1]["id"].startswith(element_id + ".")
        )

    # applying one differential element
    def apply(self, diff: dict) -> None:
        target_id, renamed_type = self.resolve(diff)
        element = self.elements[self.position(target_id)]
        constrain(element, diff, renamed_type=renamed_type, where=diff["id"], registry=self.registry)

    def resolve(self, diff: dict) -> tuple[str, str | None]:
        """The id of the snapshot element `diff` constrains (created if it is a new slice or an unfolded child),
        and the type a renamed choice in its last step names."""
        parts = _split_id(diff["id"])
        root_name = parts[0][0]
        if root_name != self.root.split(":")[0]:
            raise SnapshotError(f"Element {diff['id']}: the profile constrains {self.root}, not {root_name}.")
        current = self.root
        renamed: str | None = None
        for step, (name, slice_name) in enumerate(parts[1:], start=1):
            last = step == len(parts) - 1
            current, renamed = self.child(current, name, diff["id"], renamed)
            if slice_name is not None:
                current = self.slice(current, slice_name, diff, create=last)
                renamed = _type_slice(self.elements[self.position(current)], name, slice_name) or renamed
        return current, renamed

    def child(self, parent: str, name: str, where: str, parent_type: str | None) -> tuple[str, str | None]:
        """The id of `parent`'s child `name`, unfolding the parent's type if needed; the type a renamed choice
        (`valueQuantity` for `value[x]`) names, if it was one."""
        candidate = f"{parent}.{name}"
        if self.position(candidate) is None and not self.has_children(parent):
            self.unfold(parent, parent_type, where)
        if self.position(candidate) is not None:
            return candidate, None
        siblings = self.child_names(parent)
        choice = _choice_type(name, siblings)
        if choice is not None:
            choice_id = f"{parent}.{choice[0]}"
            code = _type_code(self.elements[self.position(choice_id)], choice[1])
            if code is None:
                raise SnapshotError(f"Element {where}: {choice[0]} does not allow the type {choice[1]}.")
            return choice_id, code
        raise SnapshotError(f"Element {where}: no element '{name}' under {parent} in the base definition.")

    def child_names(self, parent: str) -> list[str]:
        prefix = parent + "."
        names = []
        for element in self.elements:
            rest = element["id"][len(prefix) :] if element["id"].startswith(prefix) else None
            if rest and "." not in rest and ":" not in rest:
                names.append(rest)
        return names

    def unfold(self, element_id: str, chosen_type: str | None, where: str) -> None:
        """Put the children of `element_id`'s type (its snapshot, minus the root) under it."""
        at = self.position(element_id)
        element = self.elements[at]
        if "contentReference" in element:
            source = element["contentReference"].lstrip("#")
            children = [
                copy.deepcopy(e) for e in self.elements if e["id"].startswith(source + ".") and ":" not in e["id"]
            ]
            prefix_id = prefix_path = source
        else:
            structure = self.type_structure(element, chosen_type, where)
            snapshot = snapshot_of(structure, self.registry)
            prefix_id, prefix_path = snapshot[0].get("id", snapshot[0]["path"]), snapshot[0]["path"]
            children = [copy.deepcopy(e) for e in snapshot[1:]]
        for child in children:
            child_id = child.get("id", child["path"])
            child["id"] = element_id + child_id[len(prefix_id) :]
            child["path"] = element["path"] + child["path"][len(prefix_path) :]
        self.insert(at + 1, children)
        for child in children:
            self.original.setdefault(child["id"], copy.deepcopy(child))

    def type_structure(self, element: dict, chosen_type: str | None, where: str) -> dict:
        types = element.get("type", [])
        if chosen_type is not None:
            types = [kind for kind in types if kind.get("code") == chosen_type]
        if len(types) != 1:
            codes = ", ".join(kind.get("code", "?") for kind in types) or "none"
            raise SnapshotError(
                f"Element {where}: {element['id']} has {len(types)} types ({codes}); constrain it to one type "
                "before constraining what is under it."
            )
        kind = types[0]
        profiles = kind.get("profile") or []
        url = profiles[0] if len(profiles) == 1 else kind.get("code", "")
        structure = self.registry.structure(url)
        if structure is None:
            raise SnapshotError(f"Element {where}: unknown type or profile {url}.")
        return structure

    def slice(self, sliced_id: str, slice_name: str, diff: dict, *, create: bool) -> str:
        slice_id = f"{sliced_id}:{slice_name}"
        if self.position(slice_id) is not None:
            return slice_id
        if not create:
            raise SnapshotError(f"Element {diff['id']}: the slice {slice_id} is not defined before what is under it.")
        sliced = self.elements[self.position(sliced_id)]
        if not sliced.get("slicing") and not diff.get("slicing"):
            path = sliced.get("path", "")
            if EXTENSION_PATH.search(path):
                sliced["slicing"] = copy.deepcopy(DEFAULT_URL_SLICING)
            elif path.endswith("[x]"):
                sliced["slicing"] = copy.deepcopy(TYPE_SLICING)
            else:
                raise SnapshotError(
                    f"Element {diff['id']}: {sliced_id} is not sliced; give it a `slicing` before its slices."
                )
        end = self.children_end(sliced_id)
        # A slice starts as the base's definition of the sliced element (not this profile's constraints on it),
        # with no slicing of its own and min 0: the sliced element's min counts all slices together.
        template = [
            copy.deepcopy(self.original.get(e["id"], e))
            for e in self.elements
            if e["id"] == sliced_id or e["id"].startswith(sliced_id + ".")
        ]
        for element in template:
            element["id"] = slice_id + element["id"][len(sliced_id) :]
        head = template[0]
        head.pop("slicing", None)
        head["sliceName"] = slice_name
        head["min"] = 0
        self.insert(end, template)
        return slice_id


def _type_slice(element: dict, name: str, slice_name: str) -> str | None:
    """A type slice of a choice (`value[x]:valueQuantity`) names the type it keeps."""
    if not name.endswith("[x]"):
        return None
    choice = _choice_type(slice_name, [name])
    return _type_code(element, choice[1]) if choice else None


# --- constraints ----------------------------------------------------------------------------------------------------


def _max_number(value: str | None) -> float:
    if value in (None, "*"):
        return float("inf")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"max {value!r} is neither a whole number nor *.") from exc


def constrain(element: dict, diff: dict, *, renamed_type: str | None, where: str, registry) -> None:
    """Apply one differential element to its snapshot element, refusing what would loosen the base."""
    is_slice = bool(diff.get("sliceName"))
    if "max" in diff and _max_number(diff["max"]) > _max_number(element.get("max")):
        raise SnapshotError(
            f"Element {where}: max {diff['max']} is wider than the base's {element.get('max')}; a profile can only "
            "narrow it."
        )
    if "min" in diff and not is_slice and diff["min"] < element.get("min", 0):
        raise SnapshotError(
            f"Element {where}: min {diff['min']} is lower than the base's {element.get('min')}; a profile can only "
            "raise it."
        )
    for key in CONSTRAINT_KEYS:
        if key in diff:
            element[key] = copy.deepcopy(diff[key])
    if _max_number(element.get("max")) < element.get("min", 0):
        raise SnapshotError(f"Element {where}: min {element.get('min')} is above max {element.get('max')}.")
    if "type" in diff:
        element["type"] = _narrowed_types(element.get("type", []), diff["type"], where, registry)
    elif renamed_type is not None:
        element["type"] = [kind for kind in element.get("type", []) if kind.get("code") == renamed_type]
    for key in [k for k in diff if k.startswith(("fixed", "pattern"))]:
        element[key] = copy.deepcopy(diff[key])
    if diff.get("constraint"):
        known = {c.get("key") for c in element.get("constraint", [])}
        added = [copy.deepcopy(c) for c in diff["constraint"] if c.get("key") not in known]
        element["constraint"] = [*element.get("constraint", []), *added]


def _narrowed_types(base_types: list[dict], wanted: list[dict], where: str, registry) -> list[dict]:
    allowed = {kind.get("code") for kind in base_types}
    for kind in wanted:
        code = kind.get("code")
        if allowed and not any(_admits(base_code, code, registry) for base_code in allowed):
            raise SnapshotError(
                f"Element {where}: type {code} is not allowed by the base ({', '.join(sorted(filter(None, allowed)))})."
            )
        if code == "Extension":
            for url in kind.get("profile") or []:
                if registry.structure(url) is None:
                    raise SnapshotError(f"Element {where}: unknown extension definition {url}: upload it first.")
    return copy.deepcopy(wanted)


def _admits(base_code: str | None, code: str | None, registry) -> bool:
    """A base type admits itself and its specialisations (markdown for string, a resource for Resource); the
    FHIRPath system types of `id` and `url` elements stand for the primitive the element is written as."""
    if base_code in (code, "*", "Element", "Resource", "DomainResource") or not base_code or not code:
        return True
    if base_code.startswith("http://hl7.org/fhirpath/System."):
        return True
    seen = 0
    structure = registry.structure(code)
    while structure is not None and seen < MAX_BASE_DEPTH:
        parent = structure.get("baseDefinition", "")
        if parent.rsplit("/", 1)[-1] == base_code:
            return True
        structure = registry.structure(parent) if parent else None
        seen += 1
    return False


# --- shape ----------------------------------------------------------------------------------------------------------

STRING_KEYS = ("url", "type", "baseDefinition", "derivation", "kind", "name", "version", "title", "description")
ELEMENT_STRINGS = ("id", "path", "sliceName", "max", "short", "contentReference")


def check_shape(sd: dict) -> None:
    """Refuse a StructureDefinition whose parts are not the shapes FHIR gives them, before anything reads them: an
    uploaded definition is read by every validation after it, so a list where an object belongs must stop here."""
    for key in STRING_KEYS:
        if key in sd and not isinstance(sd[key], str):
            raise SnapshotError(f"StructureDefinition.{key} must be a string.")
    for view in ("snapshot", "differential"):
        if view not in sd:
            continue
        part = sd[view]
        if not isinstance(part, dict) or not isinstance(part.get("element", []), list):
            raise SnapshotError(f"StructureDefinition.{view} must be an object with an element list.")
        for number, element in enumerate(part.get("element", [])):
            _check_element(element, f"{view}.element[{number}]")


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_element(element: object, where: str) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("path"), str) or not element["path"]:
        raise SnapshotError(f"{where} must be an object with a path.")
    where = f"{where} ({element['path']})"
    for key in ELEMENT_STRINGS:
        if key in element and not isinstance(element[key], str):
            raise SnapshotError(f"{where}: {key} must be a string.")
    if "min" in element and (type(element["min"]) is not int or element["min"] < 0):
        raise SnapshotError(f"{where}: min must be a whole number.")
    if "max" in element and element["max"] != "*" and not element["max"].isdigit():
        raise SnapshotError(f"{where}: max must be a whole number or *.")
    if "mustSupport" in element and not isinstance(element["mustSupport"], bool):
        raise SnapshotError(f"{where}: mustSupport must be true or false.")
    kinds = element.get("type", [])
    if not isinstance(kinds, list) or not all(
        isinstance(kind, dict)
        and isinstance(kind.get("code"), str)
        and _strings(kind.get("profile", []))
        and _strings(kind.get("targetProfile", []))
        for kind in kinds
    ):
        raise SnapshotError(f"{where}: type must be a list of {{code, profile, targetProfile}}.")
    binding = element.get("binding", {})
    if not isinstance(binding, dict) or not all(isinstance(binding.get(k, ""), str) for k in ("strength", "valueSet")):
        raise SnapshotError(f"{where}: binding must be an object with a strength and a valueSet.")
    slicing = element.get("slicing", {})
    if (
        not isinstance(slicing, dict)
        or not isinstance(slicing.get("discriminator", []), list)
        or not all(
            isinstance(d, dict) and all(isinstance(v, str) for v in d.values())
            for d in slicing.get("discriminator", [])
        )
    ):
        raise SnapshotError(f"{where}: slicing must be an object with a discriminator list.")
    constraints = element.get("constraint", [])
    if not isinstance(constraints, list) or not all(
        isinstance(c, dict) and all(isinstance(c.get(k, ""), str) for k in ("key", "severity", "human", "expression"))
        for c in constraints
    ):
        raise SnapshotError(f"{where}: constraint must be a list of {{key, severity, human, expression}}.")
