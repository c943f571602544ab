"""Slicing in profiles: which slice each repetition belongs to (discriminators value, pattern, type, profile, exists),
then each slice's cardinality, closed and ordered rules; the walker validates each matched item against its slice.

Extensions sliced by url (the common case) are matched with one dictionary look-up. A discriminator we cannot read
(a path through resolve() or a function) makes the slicing unmatchable: it is then not checked, rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mappings.engine.errors import ErrorCode

from .patterns import contains


@dataclass(frozen=True)
class Discriminator:
    kind: str  # value | pattern | type | profile | exists
    path: tuple[str, ...]  # steps from the item; () is $this


@dataclass
class Slice:
    name: str
    min: int
    max: int | None
    element: object  # compile.ElementSpec: the slice's own definition of the item
    expected: tuple  # per discriminator: the value, pattern, type names, profile URLs or exists flag to match


@dataclass
class Slicing:
    discriminators: tuple[Discriminator, ...]
    rules: str  # open | closed | openAtEnd
    ordered: bool
    slices: tuple[Slice, ...]
    by_url: dict[str, Slice] | None  # extension slicing by url: url → slice
    matchable: bool


def compile_slicing(builder, element: dict, slice_elements) -> Slicing | None:
    slicing = element.get("slicing") or {}
    if not slice_elements and slicing.get("rules", "open") != "closed":
        return None
    discriminators = []
    matchable = True
    for item in slicing.get("discriminator", ()):
        path = item.get("path", "$this")
        steps = () if path == "$this" else tuple(path.split("."))
        if any("(" in step for step in steps):
            matchable = False
        discriminators.append(Discriminator(item.get("type", "value"), steps))
    slices = []
    name = element["path"].rsplit(".", 1)[-1]
    for piece in slice_elements:
        specs = builder.element_specs(piece, name, is_root_id=False)
        if not specs:
            continue
        expected = tuple(_expected(builder, piece, discriminator) for discriminator in discriminators)
        if any(value is None for value in expected):
            matchable = False
        maximum = piece.get("max", "*")
        slices.append(
            Slice(
                piece.get("sliceName", ""),
                piece.get("min", 0),
                None if maximum == "*" else int(maximum),
                specs[0],
                expected,
            )
        )
    by_url = None
    if matchable and [(d.kind, d.path) for d in discriminators] == [("value", ("url",))]:
        by_url = {str(piece.expected[0]): piece for piece in slices}
    return Slicing(
        tuple(discriminators),
        slicing.get("rules", "open"),
        bool(slicing.get("ordered")),
        tuple(slices),
        by_url,
        matchable and bool(discriminators),
    )


def _expected(builder, piece: dict, discriminator: Discriminator):
    """What the slice requires at the discriminator's path, read from its own element or its children."""
    tree = builder.tree
    node = piece
    node_id = piece.get("id") or piece["path"]
    rest = list(discriminator.path)
    while rest:
        step = rest[0]
        child = next(
            (c for c in tree.children.get(node_id, ()) if c["path"].rsplit(".", 1)[-1] in (step, step + "[x]")),
            None,
        )
        if child is None:
            break
        node, node_id = child, child.get("id") or child["path"]
        rest.pop(0)
    kind = discriminator.kind
    if kind in ("value", "pattern"):
        for key, value in node.items():
            if key.startswith(("fixed", "pattern")):
                return _dig(value, rest)
        if discriminator.path == ("url",):
            profiles = [p for entry in piece.get("type", ()) for p in entry.get("profile", ())]
            if profiles:
                return profiles[0]
        return None
    if kind == "type":
        return frozenset(entry.get("code") for entry in node.get("type", ())) if not rest else None
    if kind == "profile":
        found = tuple(p for entry in node.get("type", ()) for p in entry.get("profile", ()))
        return found or None
    if kind == "exists":
        return node.get("min", 0) > 0 if not rest else None
    return None


def _dig(value, steps):
    for step in steps:
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def values_at(item, steps) -> list:
    found = [item]
    for step in steps:
        following = []
        for value in found:
            if isinstance(value, dict):
                if step in value:
                    inner = value[step]
                    following.extend(inner if isinstance(inner, list) else [inner])
                else:
                    stem_length = len(step)
                    for key, inner in value.items():
                        if key.startswith(step) and len(key) > stem_length and key[stem_length].isupper():
                            following.append(inner)
        found = following
    return found


def _type_of(parent, steps) -> set[str]:
    """Types at the path: a resource's resourceType, or a choice element's type from its key (valueQuantity)."""
    if not steps:
        return {parent.get("resourceType")} if isinstance(parent, dict) and "resourceType" in parent else set()
    holders = values_at(parent, steps[:-1])
    stem = steps[-1]
    types = set()
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        for key, value in holder.items():
            if key == stem and isinstance(value, dict) and "resourceType" in value:
                types.add(value["resourceType"])
            elif key.startswith(stem) and len(key) > len(stem) and key[len(stem)].isupper():
                types.add(key[len(stem) :])  # valueString → String: matched below against string as well
    return types


def matches(piece: Slice, item, discriminators, conforms) -> bool:
    for discriminator, expected in zip(discriminators, piece.expected, strict=True):
        kind = discriminator.kind
        if kind in ("value", "pattern"):
            if not any(contains(value, expected) for value in values_at(item, discriminator.path)):
                return False
        elif kind == "type":
            found = _type_of(item, discriminator.path)
            if not any(name in expected or (name[0].lower() + name[1:]) in expected for name in found if name):
                return False
        elif kind == "exists":
            if bool(values_at(item, discriminator.path)) != expected:
                return False
        elif kind == "profile":
            values = values_at(item, discriminator.path)
            if not values or not any(conforms(value, url) for value in values for url in expected):
                return False
    return True


def check_slices(run, slicing: Slicing, items: list, path: str, check_item) -> None:
    """Assign each item to a slice, validate it against the slice, check counts, closed and ordered rules."""
    if not slicing.matchable:
        return
    counts = [0] * len(slicing.slices)
    last_index = -1
    for index, item in enumerate(items):
        chosen = _choose(run, slicing, item)
        where = f"{path}[{index}]"
        if chosen is None:
            if slicing.rules == "closed":
                run.add(
                    ErrorCode.VAL_SLICING,
                    where,
                    f"matches none of the slices ({', '.join(s.name for s in slicing.slices)}) and the slicing is "
                    "closed.",
                )
            elif slicing.rules == "openAtEnd" and last_index >= 0:
                last_index = len(slicing.slices)
            continue
        position = slicing.slices.index(chosen)
        counts[position] += 1
        if slicing.ordered and position < last_index:
            run.add(ErrorCode.VAL_SLICING, where, f"slice '{chosen.name}' is out of the order the profile sets.")
        last_index = max(last_index, position)
        check_item(item, chosen.element, path, index)
    for piece, count in zip(slicing.slices, counts, strict=True):
        if count < piece.min:
            run.add(
                ErrorCode.VAL_SLICING,
                path,
                f"slice '{piece.name}' needs at least {piece.min} item(s), found {count}.",
            )
        elif piece.max is not None and count > piece.max:
            run.add(
                ErrorCode.VAL_SLICING,
                path,
                f"slice '{piece.name}' allows at most {piece.max} item(s), found {count}.",
            )


def _choose(run, slicing: Slicing, item) -> Slice | None:
    if slicing.by_url is not None:
        url = item.get("url") if type(item) is dict else None
        return slicing.by_url.get(url) if type(url) is str else None
    for piece in slicing.slices:
        if matches(piece, item, slicing.discriminators, run.conforms):
            return piece
    return None
