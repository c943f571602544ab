"""Size checks for the ways a template names a size indirectly, found by the hostile-template review
(tests/engine/test_hostile_templates.py). environment.py checks sizes written in the template ('%999999999s',
'x' * 10**9); these cover what reaches the same allocation through an argument or through shared references:

- a width or precision taken from an argument: '%*s' % (10**9, 'x'), '{0:{1}}'.format(1, 10**9);
- filters whose count allocates: slice(10**9) builds 10**9 lists, batch(10**9, fill) pads to 10**9 items, wordwrap
  repeats its wrapstring per line;
- joins counted by what is joined, not only by the separator: ('x' * 10**6).join(rows), big_items | join;
- lists that repeat a reference: [[0] * 10**6] * 10**6 is a million references to one list, cheap to build but
  10**12 items to print or serialise. `expanded_size` counts a value as printing it would, shared parts each time.

Each raises the environment's FS-LIM-007 (check_size) before anything is built."""

from __future__ import annotations

import contextvars
import inspect
import re
from collections.abc import Callable, Iterable, Iterator

from .errors import ErrorCode, MappingError
from .limits import current_budget

# printf fields that take their width or precision from the arguments ('%*d', '%-*.*f'); and str.format fields with
# a nested field in their spec ('{0:{1}}', '{:.{}f}')
DYNAMIC_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d*\.\*)")
NESTED_FORMAT = re.compile(r"\{[^{}]*:[^{}]*\{")
GROWING_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault", "__setitem__"})
RETAINED_VALUES = 64  # one run may keep this many times max_value_bytes in the lists and dicts it grows
UNCHARGED_SIZE = 64  # smaller values are not counted (a row of a few fields): 200,000 loop iterations keep < 13 MB
CONTAINERS = (list, tuple, dict)
# (the run's budget, characters kept so far): reset when a new run's budget appears
_retained: contextvars.ContextVar[tuple[object, int]] = contextvars.ContextVar(
    "fhir_studio_retained", default=(None, 0)
)


def dynamic_widths(text: object, arguments: Iterable[object]) -> Iterator[int]:
    """The integer arguments a format string may use as a width or precision (none without such a field)."""
    if not isinstance(text, str) or not (DYNAMIC_PRINTF.search(text) or NESTED_FORMAT.search(text)):
        return
    for argument in arguments:
        if isinstance(argument, dict):
            argument = list(argument.values())
        for value in argument if isinstance(argument, (list, tuple)) else (argument,):
            if isinstance(value, int) and not isinstance(value, bool):
                yield abs(value)


def expanded_size(value: object, cap: int) -> int:
    """Characters and items in `value` as printing it would count them: a list repeated by reference counts once per
    reference. Stops counting past `cap` (the answer is then only known to be over it)."""
    kind = type(value)
    if kind in CONTAINERS:
        return _expanded(value, None, cap)
    return len(value) if isinstance(value, str) else 1  # a str subclass too: a macro's output is Markup


def _expanded(item: list | tuple | dict, seen: dict[int, int] | None, cap: int) -> int:
    key = id(item)
    if seen is not None:
        if key in seen:
            return seen[key]
        seen[key] = 0  # a list that contains itself prints as [...]: count the cycle once
    total = len(item)
    # a dict's keys and values, without building an (key, value) pair per member
    for child in (*item, *item.values()) if type(item) is dict else item:
        kind = type(child)  # the common members inline: this runs for every row a template appends
        if kind is str:
            total += len(child)
        elif kind in CONTAINERS:
            if child:  # an empty one adds nothing
                if seen is None:  # made only once there is something to nest into (a flat row needs none)
                    seen = {key: 0}
                total += _expanded(child, seen, cap)
        else:
            total += len(child) if isinstance(child, str) else 1
        if total > cap:
            break
    if seen is not None:
        seen[key] = total
    return total


def joined_size(items: object, separator: object, cap: int) -> int:
    """What a join of `items` with `separator` builds (0 for an iterator: counting it would consume it)."""
    if not isinstance(items, (list, tuple)):
        return 0
    return _expanded(items, None, cap) + len(items) * len(str(separator))


def check_str_method(env, text: str, name: str, args: tuple, kwargs: dict) -> None:
    """A str method that allocates by an argument: padding widths, format widths, join and replace sizes."""
    if name in ("center", "ljust", "rjust", "zfill", "expandtabs"):
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int):
                env.check_size(arg, f"str.{name}()")
    elif name in ("format", "format_map"):
        env.check_format_widths(text, (args, kwargs))
    elif name == "join" and args:
        env.check_size(joined_size(args[0], text, env.max_value_bytes), "str.join()")
    elif name == "replace" and len(args) >= 2:
        env.check_size(replaced_size(text, str(args[0]), str(args[1])), "replace()")


def replaced_size(text: str, old: str, new: str) -> int:
    matches = text.count(old) if old else len(text) + 1
    return len(text) + matches * max(len(new) - len(old), 0)


def container_growth(env, method, args: tuple) -> None:
    """rows.append(x), rows.extend(more), d.update(other): the element count stays within the value limit, and what
    a run keeps in the lists and dicts it grows is charged to the run (a loop appending 1 MB strings would otherwise
    hold gigabytes long before the time limit stops it)."""
    name = method.__name__  # call() passes only list and dict methods here
    if name not in GROWING_METHODS:
        return
    owner = method.__self__
    cap = env.max_value_bytes
    if name == "extend" or name == "update":
        added = len(args[0]) if args and hasattr(args[0], "__len__") else 1
        value = args[0] if args else None
    else:
        added = 1
        value = args[-1] if args else None
    if len(owner) + added > cap:
        env.check_size(len(owner) + added, f"{type(owner).__name__}.{name}()")
    kind = type(value)  # expanded_size inline: this runs for every append
    if kind is str:
        size = len(value)
    elif kind in CONTAINERS:
        size = _expanded(value, None, cap)
    elif isinstance(value, str):  # a macro's output (Markup)
        size = len(value)
    else:
        return  # counts as 1: never charged
    if size >= UNCHARGED_SIZE:
        _charge_retained(env, size)


def _charge_retained(env, size: int) -> None:
    budget = current_budget()
    if budget is None:
        return
    owner, total = _retained.get()
    total = (total if owner is budget else 0) + size
    _retained.set((budget, total))
    limit = RETAINED_VALUES * env.max_value_bytes
    if total > limit:
        raise MappingError(
            ErrorCode.LIM_VALUE_SIZE,
            f"The lists and dicts this run filled hold more than {limit:,} characters; the limit is "
            f"{RETAINED_VALUES} times the value limit.",
        )


def guarded_count_filters(env, base: dict[str, Callable]) -> dict[str, Callable]:
    """slice, batch and wordwrap wrapped with a size check on the argument that sets how much they allocate."""

    def lines_of_wordwrap(arguments: dict) -> int:
        text = str(arguments["s"])
        wrap = arguments["wrapstring"] or "\n"
        return len(text) + (len(text) // max(int(arguments["width"]), 1) + text.count("\n") + 1) * len(wrap)

    checks = {
        "slice": ("slices", lambda arguments: int(arguments["slices"])),
        "batch": ("linecount", lambda arguments: int(arguments["linecount"])),
        "wordwrap": ("wrapstring", lines_of_wordwrap),
    }
    return {name: _with_check(env, base[name], name, measure) for name, (_, measure) in checks.items() if name in base}


def _with_check(env, function: Callable, name: str, measure: Callable[[dict], int]) -> Callable:
    signature = inspect.signature(function)

    def guarded(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        env.check_size(measure(bound.arguments), name)
        return function(*args, **kwargs)

    if hasattr(function, "jinja_pass_arg"):
        guarded.jinja_pass_arg = function.jinja_pass_arg  # keep Jinja's environment/eval-context argument
    return guarded
