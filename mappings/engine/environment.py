"""The Jinja2 sandbox templates run in: no internals, no file system, no imports beyond the snippet library,
and every loop, call and multiplication charged to the run's budget.

Each template's syntax tree is checked and changed as it is parsed (`_parse`):
- every `{% for %}` iterates through `loop_guard`, which charges one loop iteration per item, so an endless or huge
  loop stops at the limit instead of hanging a worker;
- every `{% import %}`/`{% include %}` must name a literal snippet, so the include graph is known at compile time and
  cycles and depth are refused before anything runs;
- a lookup the template tests for presence (`{% if row.middle %}`, `is defined`, `| default`, `or`) is marked quiet
  (`quiet_attr`/`quiet_item`, see template_rewrites.py), so that a missing key or column warns only where the
  template expects it to be there (`SourceUndefined`, engine/missing.py).

A second, *tracing* variant marks every piece of literal template text with its template line. It is only used to
explain a failure: when the rendered output is not JSON, the run is repeated with markers and the error offset is
mapped back to the line that wrote it. The fast path pays nothing for this.
"""

from __future__ import annotations

import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from functools import partial
from types import BuiltinMethodType, FunctionType, MethodType

from jinja2 import BaseLoader, ChainableUndefined, StrictUndefined, TemplateNotFound, Undefined, UndefinedError, nodes
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.nodes import EvalContext
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace, _PassArg, missing
from markupsafe import Markup

from . import sandbox_policy as policy
from .accelerated import is_function
from .errors import ErrorCode, MappingError
from .filters import FILTERS, GLOBALS, TESTS
from .filters.values import finalize
from .hl7v2 import Component, Field, Group, Message, Repetition, Segment, SubComponent
from .limits import current_budget
from .lookup import LookupTable
from .missing import note_missing
from .template_rewrites import DICT_NAMES, ConcatGuard, GuardedLookups, MappingCodeGenerator, MappingTemplate
from .xmlsource import XmlNode, _SectionNode

SNIPPET_PREFIX = "snippets/"
MARK_START, MARK_END = "\x02", "\x03"
MARKER = re.compile("\x02(\\d+)\x03")
WIDE_NUMBER = re.compile(r"\d{7,}")
# Types whose every public attribute is template API (a segment, `raw`, `all()`, an imported macro): reading one needs
# none of the sandbox's checks for Python internals, whose names all start with "_" (refused on these as everywhere).
# Jinja's own `namespace()` and `loop` are such types too.
OPEN_TYPES = frozenset(
    {Message, Group, Segment, Field, Repetition, Component, SubComponent, TemplateModule, Namespace, LoopContext}
)
# XML nodes answer any other name with the child or attribute of that name (`node.code`); asking Python first for an
# attribute a node does not have raised and caught an AttributeError per read.
XML_TYPES = {kind: frozenset(name for name in dir(kind) if name[:1] != "_") for kind in (XmlNode, _SectionNode)}
# The studio's functions as Python defines them, and as Cython compiles them (accelerated.py): called plainly.
FUNCTION_KINDS = frozenset({FunctionType, *(type(function) for function in GLOBALS.values() if is_function(function))})
# Whose public methods a template may call without the sandbox's questions (msg.all("OBX"), node.all("entry")).
TRUSTED_METHOD_OWNERS = OPEN_TYPES | frozenset(XML_TYPES)


class SnippetLoader(BaseLoader):
    """Templates come only from the mapping's own text and its snippet library, never from disk."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def get_source(self, environment, template: str):
        if template not in self.sources:
            known = ", ".join(sorted(name for name in self.sources if name.startswith(SNIPPET_PREFIX))) or "none"
            raise TemplateNotFound(template, f"No snippet named '{template}'. Known snippets: {known}.")
        return self.sources[template], template, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


def _noting_init(self, hint=None, obj=missing, name=None, exc=UndefinedError) -> None:
    Undefined.__init__(self, hint, obj, name, exc)
    kind = type(obj)
    if kind is dict or kind is list:  # note_missing(obj, name, False), inlined: once per missing key of every record
        budget = current_budget()
        if budget is not None and budget.lookups is not None:
            budget.lookups.note(budget, obj, name, False)


class SourceUndefined(ChainableUndefined):
    """What a lookup that found nothing gives in a mapping; one on a dict or list is reported to the run's missing-key
    check (engine/missing.py), which warns about a CSV column or a misspelt key that is not there. Only created when
    a lookup misses: a lookup that finds its key costs nothing more."""

    __slots__ = ()
    __init__ = _noting_init


class StrictSourceUndefined(StrictUndefined):
    """The same for a strict mapping: using the value still fails (FS-RND-001); printing it, which gives nothing,
    now warns too."""

    __slots__ = ()
    __init__ = _noting_init


def finalize_text(value: object) -> object:
    """What `~` makes of a value: Jinja's own rule (undefined is empty), kept here because the guard replaces it."""
    return "" if isinstance(value, Undefined) else value


# HL7 v2 nodes: a template cannot change them, so their parts are counted before the loop, charged at once, and
# looped over without a generator between (most loops of an HL7 v2 mapping: `for cx in pid[3]`).
FIXED_SIZE_TYPES = frozenset({Segment, Field, Repetition, Component, SubComponent})


def loop_guard(iterable: Iterable) -> Iterable:
    """Charge one loop iteration per item (inserted around every for-loop's iterable)."""
    budget = current_budget()
    kind = type(iterable)
    if budget is not None and kind in FIXED_SIZE_TYPES:
        items = list(iterable) if kind is Segment else iterable._all_kids()  # what iterating gives, copied once
        budget.charge(len(items))
        return items
    return _ticking(iterable, budget)


def _ticking(iterable: Iterable, budget) -> Iterator:
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.tick()
        yield item


class CompiledCodeCache(BytecodeCache):
    """Compiled code of template texts, shared by every (untraced) environment in the process, least recently used
    dropped first. The live preview compiles a new root text on each keystroke; without this its unchanged snippets
    were compiled again each time (120 ms of the ADT demo's 125 ms). Entries are keyed by name and source checksum,
    and keep the imports found while parsing, because a hit skips parsing and the include checks need them."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, str], tuple[str, list, object]] = OrderedDict()
        self.lock = threading.Lock()

    def get_bucket(self, environment, name: str, filename: str | None, source: str) -> Bucket:
        bucket = super().get_bucket(environment, name, filename, source)
        bucket.template_name = name
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        with self.lock:
            found = self.items.get((bucket.key, bucket.checksum))
            if found is not None:
                self.items.move_to_end((bucket.key, bucket.checksum))
        if found is not None:
            name, imports, bucket.code = found
            bucket.environment.imports[name] = list(imports)

    def dump_bytecode(self, bucket: Bucket) -> None:
        name = bucket.template_name
        entry = (name, list(bucket.environment.imports.get(name, [])), bucket.code)
        with self.lock:
            self.items[(bucket.key, bucket.checksum)] = entry
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


COMPILED_CODE = CompiledCodeCache()


def _call_macro(context, macro: Macro, args: tuple, kwargs: dict) -> object:
    """What `Context.call` and `Macro.__call__` do for a macro called with positional arguments only (every call in
    the demos): the missing ones are `missing`, which the macro's code replaces with their defaults. Anything else
    (keyword arguments, `caller`, `varargs`, too many arguments) takes Jinja's own path, errors included."""
    if kwargs:
        kwargs.pop("_loop_vars", None)  # the caller's loop variables: only a context-taking callable reads them
        kwargs.pop("_block_vars", None)
    count = macro._argument_count
    unusual = macro.caller or macro.explicit_caller or macro.catch_kwargs or macro.catch_varargs
    if kwargs or unusual or len(args) > count or (args and type(args[0]) is EvalContext):
        return context.call(macro, *args, **kwargs)
    if len(args) < count:
        args = (*args, *(missing,) * (count - len(args)))
    return macro._func(*args)


def _call_plain(env: SandboxedEnvironment, function, args: tuple, kwargs: dict) -> object:
    """What `Context.call` does for a callable that takes no context (the studio's own functions, methods of source
    nodes), without asking the sandbox about callables it always allows: none of them is marked unsafe."""
    if kwargs:  # the caller's loop variables (a call inside a loop): only a context-taking callable reads them
        kwargs.pop("_loop_vars", None)
        kwargs.pop("_block_vars", None)
    try:
        return function(*args, **kwargs)
    except StopIteration:
        return env.undefined("value was undefined because a callable raised a StopIteration exception")


class MappingEnvironment(SandboxedEnvironment):
    code_generator_class = MappingCodeGenerator
    template_class = MappingTemplate
    # `*`, `**`, `%` and `+` can build gigabytes from a few characters ('x' * 10**9, '%999999999s' % x, or a string
    # doubled 40 times in a loop); check the size first. `~` is guarded by rewriting it to `concat_guard` in _parse.
    intercepted_binops = frozenset(["*", "**", "%", "+"])

    def __init__(self, sources: dict[str, str], *, strict: bool, max_value_bytes: int, **options) -> None:
        super().__init__(
            loader=SnippetLoader(sources),
            undefined=StrictSourceUndefined if strict else SourceUndefined,
            autoescape=False,  # we write JSON, not HTML; values go through `tojson`
            auto_reload=False,
            cache_size=-1,
            keep_trailing_newline=False,
            **options,
        )
        self.max_value_bytes = max_value_bytes
        self.plain_calls: frozenset = frozenset()  # set by build_environment
        self.environment_calls: frozenset = frozenset()  # those of plain_calls that take the environment first
        self.bound_calls: dict = {}  # global name → that function given this environment (template_rewrites.py)
        self.imports: dict[str, list[tuple[str, int]]] = {}  # template → [(snippet it imports, line)]
        self.quiet_undefined = StrictUndefined if strict else ChainableUndefined  # unreported: the template tests it
        self.filters["loop_guard"] = loop_guard
        for name, function in list(self.filters.items()):  # select, map, join…: their async-or-not check per call
            if getattr(function, "jinja_async_variant", False):  # is for async environments; ours never is
                self.filters[name] = function.__wrapped__
        self.filters.update(self.guarded_filters())
        for nondeterministic in ("random", "shuffle"):  # a mapping must give the same output for the same input
            self.filters.pop(nondeterministic, None)
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._limited_range

    def _limited_range(self, *args: int) -> range:
        values = range(*args)
        if len(values) > self.max_value_bytes:
            raise MappingError(ErrorCode.LIM_VALUE_SIZE, f"range() of {len(values):,} numbers is over the limit.")
        return values

    def getattr(self, obj: object, attribute: str) -> object:
        """`obj.attribute`, the sandbox's way, with a fast path for the engine's own source types (OPEN_TYPES,
        XML_TYPES) and for a key of a plain dict: the same answer without the checks that cannot refuse a public name
        of theirs."""
        kind = type(obj)
        if kind in OPEN_TYPES:
            if attribute[:1] != "_":
                try:
                    return getattr(obj, attribute)
                except AttributeError:
                    pass  # the sandbox's path: then obj[attribute], else undefined
        elif kind is dict and attribute not in DICT_NAMES:
            try:
                return obj[attribute]
            except KeyError:
                pass  # the sandbox's path, which makes the undefined value (and notes the missing key)
        elif kind in XML_TYPES and attribute[:1] != "_":
            if attribute in XML_TYPES[kind]:
                return getattr(obj, attribute)  # the node's own API: node.all, node.parent
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        return SandboxedEnvironment.getattr(self, obj, attribute)

    def is_safe_attribute(self, obj: object, attr: str, value: object) -> bool:
        # A compiled function (accelerated.py) answers func_globals, func_code, func_closure… without the leading
        # underscore that Jinja's sandbox refuses, and Jinja only knows Python's own function type: refuse them too.
        if attr.startswith("func_") and callable(obj):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: object, attribute: str):
        # Jinja's default returns an Undefined that only fails when printed, and ChainableUndefined never does; a probe
        # of internals should fail loudly, at the line that tried it.
        raise SecurityError(f"access to attribute '{attribute}' of a {type(obj).__name__} value is not allowed")

    def quiet_attr(self, obj: object, name: str) -> object:
        """`obj.name` where the template tests it (`{% if row.x %}`, `is defined`, `| default`, `or`): what a lookup
        marked quiet calls instead of `getattr`. A miss on a dict or list is reported as guarded: only a
        misspelling warns."""
        kind = type(obj)
        if kind is dict and name not in DICT_NAMES and name in obj:
            return obj[name]  # what getattr gives, without asking Python for an attribute a dict cannot have
        if (kind is dict or kind is list) and not hasattr(obj, name) and (kind is list or name not in obj):
            note_missing(obj, name, True)
            return self.quiet_undefined(obj=obj, name=name)
        return self.getattr(obj, name)

    def quiet_item(self, obj: object, key: object) -> object:
        """`obj[key]` where the template tests it; see `quiet_attr`."""
        kind = type(obj)
        if kind is not dict and kind is not list:
            try:
                return obj[key]  # what the sandbox's getitem tries first (HL7 v2 nodes, `{% if pid[19] %}`: hot)
            except (TypeError, LookupError):
                return self.getitem(obj, key)
        try:
            found = key in obj if kind is dict else type(key) is not str
        except TypeError:  # an unhashable key: the sandbox says what that gives
            found = True
        if not found and not (type(key) is str and hasattr(obj, key)):
            note_missing(obj, key, True)
            return self.quiet_undefined(obj=obj, name=key)
        return self.getitem(obj, key)

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_value_bytes:
            raise MappingError(
                ErrorCode.LIM_VALUE_SIZE,
                f"{what} would build a value of {size:,} characters; the limit is {self.max_value_bytes:,}.",
            )

    def check_format_widths(self, text: object, arguments: tuple = ()) -> None:
        """printf/format width and precision fields ('%999999999s', '{:>999999999}', or '%*s' taking it from the
        arguments) allocate that many chars."""
        if isinstance(text, str):
            for digits in WIDE_NUMBER.findall(text):
                self.check_size(int(digits), "A format width")
            if "*" in text or "{" in text:  # a width the arguments give
                for width in policy.dynamic_widths(text, arguments):
                    self.check_size(width, "A format width")

    def call_binop(self, context, operator_name: str, left, right):
        if operator_name == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                self.check_size(len(left) + len(right), "Joining two values with +")
                if not isinstance(left, str):  # lists of shared references: count what they print as
                    cap = self.max_value_bytes
                    self.check_size(
                        policy.expanded_size(left, cap) + policy.expanded_size(right, cap), "Joining two lists with +"
                    )
            return operator.add(left, right)
        if operator_name == "%":
            self.check_format_widths(left, (right,))
            return operator.mod(left, right)
        if operator_name == "**":
            exact = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
            if exact and right * abs(left).bit_length() > self.max_value_bytes * 8:
                raise MappingError(ErrorCode.LIM_VALUE_SIZE, f"{left} ** {right} is too large to compute.")
            return operator.pow(left, right)
        if isinstance(left, int) and isinstance(right, (str, list, tuple)):
            left, right = right, left
        if isinstance(left, (str, list, tuple)) and isinstance(right, int) and len(left) * right > self.max_value_bytes:
            raise MappingError(
                ErrorCode.LIM_VALUE_SIZE,
                f"Repeating a value of length {len(left):,} {right:,} times is over the limit of "
                f"{self.max_value_bytes:,}.",
            )
        if isinstance(left, (list, tuple)) and isinstance(right, int) and right > 1:
            self.check_size(policy.expanded_size(left, self.max_value_bytes) * right, "Repeating a list with *")
        return operator.mul(left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 — Jinja's own signature
        kind = type(__obj)
        if kind is Macro:  # calls by keyword, inside loops, with fewer arguments (see template_rewrites.py)
            if kwargs:  # the caller's loop variables (a call inside a loop): only a context-taking callable reads them
                kwargs.pop("_loop_vars", None)
                kwargs.pop("_block_vars", None)
            # All arguments given by position to a plain macro: straight to its code, _call_macro inline. The macro's
            # own code counts the call (template_rewrites.py); its text comes back as Markup: it writes JSON fragments.
            if (
                kwargs
                or len(args) != __obj._argument_count
                or __obj.caller
                or __obj.explicit_caller
                or __obj.catch_kwargs
                or __obj.catch_varargs
                or (args and type(args[0]) is EvalContext)
            ):
                result = _call_macro(__context, __obj, args, kwargs)
            else:
                result = __obj._func(*args)
            # Markup(result) without Markup.__new__'s Python code, which only matters for a value that is not a str
            return str.__new__(Markup, result) if type(result) is str else result
        budget = current_budget()
        if budget is not None:  # the clock is read every 16th call: recursion without loops still stops in time
            budget.calls += 1
            if budget.calls & 15 == 0:
                budget.check_time()
        if kind in FUNCTION_KINDS and __obj in __self.plain_calls:
            return _call_plain(__self, __obj, (__self, *args) if __obj in __self.environment_calls else args, kwargs)
        if kind is MethodType and type(__obj.__self__) in TRUSTED_METHOD_OWNERS:
            return _call_plain(__self, __obj, args, kwargs)
        if kind is BuiltinMethodType and type(__obj.__self__) in (list, dict):  # rows.append(x): only its size
            policy.container_growth(__self, __obj, args)
            return _call_plain(__self, __obj, args, kwargs)
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format in a function of its own
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            policy.check_str_method(__self, owner, getattr(method, "__name__", ""), args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def guarded_filters(self) -> dict:
        """Jinja's own filters that can allocate without bound, wrapped with the same size checks."""
        base = dict(self.filters)

        def center(value, width=80):
            self.check_size(int(width), "center")
            return base["center"](value, width)

        def indent(value, width=4, *args, **kwargs):
            self.check_size(len(str(value)) * (int(width) if isinstance(width, int) else len(str(width)) + 1), "indent")
            return base["indent"](value, width, *args, **kwargs)

        def format_(value, *args, **kwargs):
            self.check_format_widths(value, (args, kwargs))
            return base["format"](value, *args, **kwargs)

        def concat_guard(values: list) -> str:
            texts = [str(finalize_text(value)) for value in values]
            self.check_size(sum(map(len, texts)), "Joining values with ~")
            return "".join(texts)

        def join(eval_ctx, value, d="", attribute=None):
            items = list(value) if not isinstance(value, (list, tuple)) else value
            self.check_size(policy.joined_size(items, d, self.max_value_bytes), "join")  # counts the separators too
            return base["join"](eval_ctx, items, d, attribute)

        join.jinja_pass_arg = base["join"].jinja_pass_arg

        def replace(eval_ctx, value, old, new, count=None):
            self.check_size(policy.replaced_size(str(value), str(old), str(new)), "replace()")
            return base["replace"](eval_ctx, value, old, new, count)

        replace.jinja_pass_arg = base["replace"].jinja_pass_arg  # keep Jinja's eval-context argument
        return {
            "center": center,
            "indent": indent,
            "format": format_,
            "replace": replace,
            "join": join,
            "concat_guard": concat_guard,
            **policy.guarded_count_filters(self, base),
        }

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        imported: list[tuple[str, int]] = []
        for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            target = node.template
            if not isinstance(target, nodes.Const) or not isinstance(target.value, str):
                raise MappingError(
                    ErrorCode.TPL_DYNAMIC_INCLUDE,
                    'Snippets must be imported by a literal name, e.g. {% import "snippets/hl7v2/cx.j2" as cx %}.',
                    template=name,
                    line=node.lineno,
                )
            imported.append((target.value, node.lineno))
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "loop_guard", [], [], None, None, lineno=loop.lineno)
        tree = GuardedLookups().visit(tree)
        tree = ConcatGuard().visit(tree)
        self.imports[name or "<template>"] = imported
        return tree


class LineMarker(Extension):
    """Tracing only: prefix each line of literal template text with a marker naming its template and line."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        places: list[tuple[str, int]] = self.environment.marker_places
        for token in stream:
            if token.type != "data":
                yield token
                continue
            pieces = []
            for offset, text in enumerate(token.value.split("\n")):
                places.append((stream.name or "<template>", token.lineno + offset))
                pieces.append(f"{MARK_START}{len(places) - 1}{MARK_END}{text}")
            yield Token(token.lineno, "data", "\n".join(pieces))


def build_environment(
    sources: dict[str, str],
    *,
    strict: bool,
    max_value_bytes: int,
    lookup_tables: dict[str, LookupTable],
    timezone: str,
    tracing: bool = False,
) -> MappingEnvironment:
    env = MappingEnvironment(
        sources,
        strict=strict,
        max_value_bytes=max_value_bytes,
        finalize=finalize,
        extensions=[LineMarker] if tracing else [],
        # Traced code numbers its markers into this environment's marker_places; locate.py caches it with those.
        bytecode_cache=None if tracing else COMPILED_CODE,
    )
    env.marker_places = []
    env.lookup_tables = lookup_tables
    env.timezone = timezone
    env.filters.update(FILTERS)
    env.globals.update(GLOBALS)
    # Called without the sandbox's questions (MappingEnvironment.call): functions of ours that take no context.
    passes = {function: getattr(function, "jinja_pass_arg", None) for function in GLOBALS.values()}
    env.plain_calls = frozenset(
        function
        for function, pass_arg in passes.items()
        if env.is_safe_callable(function) and pass_arg in (None, _PassArg.environment)
    )
    env.environment_calls = frozenset(function for function, pass_arg in passes.items() if pass_arg is not None)
    env.bound_calls = {
        name: partial(function, env) for name, function in GLOBALS.items() if function in env.environment_calls
    }
    env.tests.update(TESTS)
    return env


def strip_markers(text: str, places: list[tuple[str, int]]) -> tuple[str, list[tuple[int, str, int]]]:
    """Remove markers; return the clean text and (offset in clean text, template, line) for each marked piece."""
    clean: list[str] = []
    spans: list[tuple[int, str, int]] = []
    length = 0
    pos = 0
    for match in MARKER.finditer(text):
        chunk = text[pos : match.start()]
        clean.append(chunk)
        length += len(chunk)
        template, line = places[int(match.group(1))]
        spans.append((length, template, line))
        pos = match.end()
    clean.append(text[pos:])
    return "".join(clean), spans
