"""Compiled code of a template reused when only its literal text changed (issue 14: the editor's live preview).

Most keystrokes in the editor change only the literal text a template writes (the JSON between its tags). Jinja's
parser and code generator never look into that text: each piece becomes one string constant of the Python code, or a
part of one (a piece next to an output Jinja folds at compile time, `{{ "x" }}`, is joined with it). So a text whose
tokens are those of one compiled before, literal text aside (same tags, same expressions, same lines), compiles to the
same code with other string constants. Compiling the ADT demo's 55-line root costs ~20 ms; this costs about 1 ms.

How: the first text of a shape is compiled as a *skeleton*, each piece of literal text replaced by a numbered
sentinel (`DataSentinels`, a token filter: the lexer still reads the real text, so lines and whitespace control are
the real ones). A later text of the same shape gets the skeleton's code with every sentinel in its string constants
replaced by its own pieces, in code objects nested at any depth (macros, blocks, loops' bodies). The result goes into
the engine's compiled-code cache (`COMPILED_CODE`) under the real text, through Jinja's bytecode-cache protocol, with
the imports the skeleton's parse found (the same: they are code tokens); compiling the real text then finds it there.

The traced variant (`prime_traced_code`, for the runs that find the template line of a JSON error or a validation
issue, engine/locate.py) works the same way on line-marked code: each line of literal text keeps its marker and
gets its own sentinel, and skeletons belong to one list of marker places (a generation of traced code).

Anything unusual compiles the normal way, which also reports every error: a text the lexer refuses, a skeleton that
does not compile (its key is remembered, so a broken text costs one extra compile, not one per key), or a text that
contains this process's sentinel prefix (then no literal text could be told from a sentinel).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from types import CodeType

from jinja2 import TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.lexer import TOKEN_DATA, TOKEN_RAW_BEGIN, TOKEN_RAW_END, Token, TokenStream, ignored_tokens

from .environment import COMPILED_CODE, MARKER, CompiledCodeCache, MappingEnvironment, build_environment

ROOT_NAME = "template.j2"
_PREFIX = f"\x1aFS{uuid.uuid4().hex}:"  # per process: no template can be written to guess it
_SENTINEL = re.compile(re.escape(_PREFIX) + r"(\d+)\x1a")

# The lexer every MappingEnvironment has (Jinja shares one per syntax): extensions change no token before a filter.
_LEXER = build_environment({}, strict=False, max_value_bytes=1, lookup_tables={}, timezone="UTC").lexer

LexedToken = tuple[int, str, str]  # (line, type, source text) as Jinja's lexer reads them
Shape = tuple  # a text's tokens with every piece of literal text reduced to its line: what its code depends on


class DataSentinels(Extension):
    """Skeleton compiles only: the n-th piece of literal text becomes sentinel n."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        count = 0
        for token in stream:
            if token.type == "data":
                yield Token(token.lineno, "data", f"{_PREFIX}{count}\x1a")
                count += 1
            else:
                yield token


class LineSentinels(Extension):
    """Traced skeleton compiles only, after LineMarker (priority 100): each marked line keeps its marker, and its
    text becomes the next sentinel."""

    priority = 200

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        count = 0
        for token in stream:
            if token.type != "data":
                yield token
                continue
            lines = []
            for line in token.value.split("\n"):
                marker = MARKER.match(line)
                lines.append(f"{marker.group() if marker else ''}{_PREFIX}{count}\x1a")
                count += 1
            yield Token(token.lineno, "data", "\n".join(lines))


class _Skeletons:
    """Skeleton code by shape, least recently used dropped first; None for a shape whose skeleton does not compile.
    One environment compiles them all: it only generates code (every MappingEnvironment generates the same), and
    its `imports` are per name, so compiles take turns. A traced skeleton numbers its markers into one list of
    places: a new list starts a new set of skeletons."""

    def __init__(self, *, tracing: bool, size: int = 64) -> None:
        self.tracing = tracing
        self.size = size
        self.items: OrderedDict[tuple[str, Shape], tuple[CodeType, list] | None] = OrderedDict()
        self.lock = threading.Lock()
        self.environment: MappingEnvironment | None = None
        self.compiles = 0  # skeleton compiles done (tests and benchmarks read it)

    def _environment(self, places: list | None = None) -> MappingEnvironment:
        env = self.environment
        if env is None or (self.tracing and env.marker_places is not places):
            env = build_environment(
                {}, strict=False, max_value_bytes=1, lookup_tables={}, timezone="UTC", tracing=self.tracing
            )
            env.add_extension(LineSentinels if self.tracing else DataSentinels)
            if self.tracing:
                env.marker_places = places
                self.items.clear()  # numbered into another list of places
            self.environment = env
        return env

    def get(self, name: str, shape: Shape, source: str, places: list | None = None) -> tuple[CodeType, list] | None:
        key = (name, shape)
        with self.lock:
            env = self._environment(places)
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            self.compiles += 1
            try:
                code = env.compile(source, name, name)
                found = (code, list(env.imports.get(name, [])))
            except Exception:  # noqa: BLE001 — the normal compile that follows reports it, exactly
                found = None
            finally:
                env.imports.pop(name, None)
            self.items[key] = found
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return found

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.environment = None
            self.compiles = 0


SKELETONS = _Skeletons(tracing=False)
TRACED_SKELETONS = _Skeletons(tracing=True)


class _Recent:
    """The tokens of the last few texts lexed, by text: a preview lexes its text once for its references and its
    shape, and the run that locates its issues (traced code) or a second render of it finds them here."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.items: OrderedDict[str, list[LexedToken] | None] = OrderedDict()
        self.lock = threading.Lock()

    def lex(self, text: str) -> list[LexedToken] | None:
        with self.lock:
            if text in self.items:
                self.items.move_to_end(text)
                return self.items[text]
        try:
            tokens = _tokens(text)
        except TemplateSyntaxError:
            tokens = None
        with self.lock:
            self.items[text] = tokens
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return tokens

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


RECENT = _Recent()
_SKIPPED = frozenset({*ignored_tokens, TOKEN_RAW_BEGIN, TOKEN_RAW_END})  # what Lexer.wrap drops


def _tokens(text: str) -> list[LexedToken]:
    """Jinja's raw tokens, without `Lexer.wrap`'s conversions (a third of the lexer's time on the ADT demo): a code
    token keeps its source text, which decides its converted value, so equal lists still mean equal parses. Literal
    text gets wrap's newline normalization: it is what the template writes. A value wrap would refuse (an invalid
    identifier or string escape) is refused when the text or its skeleton compiles, as always."""
    found = []
    for line, kind, value in _LEXER.tokeniter(text, None):
        if kind == TOKEN_DATA:
            found.append((line, kind, _LEXER._normalize_newlines(value)))
        elif kind not in _SKIPPED:
            found.append((line, kind, value))
    return found


def lex(text: str) -> list[LexedToken] | None:
    """The text's tokens as the template environments read them (never to be changed: they are shared); None when
    the lexer refuses the text."""
    return RECENT.lex(text)


def clear_caches() -> None:
    SKELETONS.clear()
    TRACED_SKELETONS.clear()
    RECENT.clear()


def shape_of(tokens: list[LexedToken]) -> Shape:
    return tuple((line, kind, None) if kind == "data" else (line, kind, value) for line, kind, value in tokens)


def _with_data(value: object, pieces: list[str]) -> object:
    kind = type(value)
    if kind is str:
        if _PREFIX not in value:
            return value
        return _SENTINEL.sub(lambda match: pieces[int(match.group(1))], value)
    if kind is CodeType:
        return value.replace(co_consts=tuple(_with_data(const, pieces) for const in value.co_consts))
    if kind is tuple:
        return tuple(_with_data(item, pieces) for item in value)
    if kind is frozenset:
        return frozenset(_with_data(item, pieces) for item in value)
    return value


def prime_compiled_code(text: str, tokens: list[LexedToken] | None = None, *, name: str = ROOT_NAME) -> bool:
    """Put the compiled code of `text` (a template named `name`, loaded as the snippet loader loads it) into the
    engine's compiled-code cache when a skeleton of its shape compiled; True when the cache now has it. `tokens`:
    `lex(text)`, when the caller has them already. Compiling the text afterwards gives the same template either way."""
    return _prime(COMPILED_CODE, SKELETONS, text, tokens, name, None)


def prime_traced_code(env: MappingEnvironment, text: str, *, name: str = ROOT_NAME) -> bool:
    """The same for a traced environment (engine/locate.py): into its bytecode cache, markers numbered into its
    `marker_places`. The caller holds the lock that guards appending to those places, as for any traced compile."""
    return _prime(env.bytecode_cache, TRACED_SKELETONS, text, None, name, env.marker_places)


def _prime(
    cache: CompiledCodeCache,
    skeletons: _Skeletons,
    text: str,
    tokens: list[LexedToken] | None,
    name: str,
    places: list | None,
) -> bool:
    # The bucket's environment only carries `imports` to and from the cache (CompiledCodeCache): a holder of our own.
    bucket = cache.get_bucket(_ImportsHolder(), name, name, text)
    if bucket.code is not None:
        return True
    if _PREFIX in text:
        return False
    tokens = lex(text) if tokens is None else tokens
    if tokens is None:
        return False
    data = [value for _, kind, value in tokens if kind == "data"]
    shape = shape_of(tokens)
    if places is not None:  # one sentinel per line: the lines of each piece are part of the shape
        shape = (shape, tuple(value.count("\n") for value in data))
        data = [line for value in data for line in value.split("\n")]
    found = skeletons.get(name, shape, text, places)
    if found is None:
        return False
    code, imports = found
    bucket.code = _with_data(code, data)
    bucket.environment.imports[name] = imports
    cache.set_bucket(bucket)
    return True


class _ImportsHolder:
    def __init__(self) -> None:
        self.imports: dict[str, list] = {}
