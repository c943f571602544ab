"""What a template refers to — the snippets it imports and the lookup tables it names — read from Jinja's syntax tree.

`template_references(text)` parses the text once (with Jinja's own parser and the syntax the engine's environment
uses: default delimiters, no extensions) and walks the tree:
- snippets: the literal names of `{% import %}`, `{% from … import … %}`, `{% include %}` and `{% extends %}`, in the
  order they first appear (a name that is not a string literal is refused by `compile_mapping` as FS-TPL-004);
- lookup tables: the string literals given as the table argument of the filters that read one (`TABLE_FILTERS`),
  used directly (`code | translate("gender")`, `table="gender"`, `{% filter translate_code("gender") %}`) or through
  `map` (`codes | map("translate", "gender")`);
- tables a filter reads by itself (`xpn | human_name_from_xpn` reads `hl7v2-name-use`: filters.TABLES_READ), as
  if named as literals where the filter is used;
- dynamic tables: the (template, line) of every table argument that is not a string literal (`translate(table)` in a
  macro): which table it names is only known when the template runs, so it must be listed by hand.

A text that does not parse raises MappingError FS-TPL-001 at its line, as compiling it does. With `tolerant=True` it
is read with Jinja's lexer instead, which still reads the tokens of a half-written template: the result has the
literal imports and `| translate("x")` / `map("translate", "x")` tables found before the first unreadable token,
no dynamic places, and `complete=False`. The studio saves drafts that do not compile, and still needs their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import Environment, TemplateSyntaxError, nodes

from .errors import ErrorCode, MappingError
from .filters import TABLES_READ

# Filter → position of its lookup-table argument after the filtered value (see filters/codes.py: translate(env, code,
# table, source_system)); the argument may also be passed by its keyword, `table`.
TABLE_FILTERS = {"translate": 0, "translate_code": 0}
TABLE_KEYWORD = "table"
IMPORT_NODES = (nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)
IMPORT_TAGS = frozenset({"import", "from", "include", "extends"})
MAP_TOKENS = ["name", "lparen", "string", "comma", "string"]

# Parsing needs no filters, globals or sandbox: MappingEnvironment parses with Jinja's default syntax, as this does.
_PARSER = Environment(autoescape=False)


@dataclass(frozen=True)
class TemplateReferences:
    snippets: tuple[str, ...] = ()  # snippet names, in the order they first appear
    tables: tuple[str, ...] = ()  # lookup table names given as string literals, in the order they first appear
    dynamic_tables: tuple[tuple[str, int], ...] = ()  # (template, line) of each table argument that is no literal
    complete: bool = True  # False: the text does not parse and was read token by token (tolerant=True)


def template_references(source: str, name: str = "template.j2", *, tolerant: bool = False) -> TemplateReferences:
    """The snippets and lookup tables `source` refers to (see the module docstring). `name` is the template's name in
    the places reported, as `compile_mapping` names it (`template.j2` for a mapping's own template)."""
    try:
        return _parsed_references(source, name)
    except TemplateSyntaxError as exc:
        if tolerant:
            return _lexed_references(source, name)
        raise MappingError(
            ErrorCode.TPL_SYNTAX, f"Template syntax error: {exc.message}", template=exc.name or name, line=exc.lineno
        ) from exc


def closure_references(
    template: str, snippets: Mapping[str, str], *, name: str = "template.j2", tolerant: bool = False
) -> dict[str, TemplateReferences]:
    """The references of `template` and of every snippet it reaches, directly or through other snippets, in
    `snippets` ({name: text}), by template name; a name `snippets` lacks is left out (compiling reports it)."""
    found = {name: template_references(template, name, tolerant=tolerant)}
    pending = [snippet for snippet in found[name].snippets if snippet in snippets]
    while pending:
        snippet = pending.pop(0)
        if snippet in found:
            continue
        found[snippet] = template_references(snippets[snippet], snippet, tolerant=tolerant)
        pending += [target for target in found[snippet].snippets if target in snippets and target not in found]
    return found


@lru_cache(maxsize=256)  # the same snippet texts are read on every draft save and preview
def _parsed_references(source: str, name: str) -> TemplateReferences:
    tree = _PARSER.parse(source, name)
    snippets: dict[str, None] = {}
    tables: dict[str, None] = {}
    dynamic: list[tuple[str, int]] = []
    for node in tree.find_all((*IMPORT_NODES, nodes.Filter)):
        if isinstance(node, IMPORT_NODES):
            if isinstance(node.template, nodes.Const) and isinstance(node.template.value, str):
                snippets[node.template.value] = None
            continue
        for table in _tables_read(node):
            tables[table] = None
        argument = _table_argument(node)
        if argument is None:
            continue
        if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
            tables[argument.value] = None
        else:
            dynamic.append((name, argument.lineno or node.lineno))
    return TemplateReferences(tuple(snippets), tuple(tables), tuple(dynamic))


def forget_references() -> None:
    """Empty the cache of references read from texts (engine.clear_caches calls this)."""
    _parsed_references.cache_clear()


def _tables_read(node: nodes.Filter) -> tuple[str, ...]:
    """The tables a filter reads without being told (TABLES_READ), used directly or through `map`."""
    name, args = node.name, node.args
    if name == "map" and args and isinstance(args[0], nodes.Const) and isinstance(args[0].value, str):
        name = args[0].value
    return TABLES_READ.get(name, ())


def _table_argument(node: nodes.Filter) -> nodes.Expr | None:
    """The expression a filter call passes as a lookup table name, or None when it passes none."""
    name, args = node.name, list(node.args)
    if name == "map" and args and isinstance(args[0], nodes.Const) and args[0].value in TABLE_FILTERS:
        name, args = args[0].value, args[1:]  # map("translate", "x") calls translate(item, "x")
    if name not in TABLE_FILTERS:
        return None
    position = TABLE_FILTERS[name]
    if len(args) > position:
        return args[position]
    for keyword in node.kwargs:
        if keyword.key == TABLE_KEYWORD:
            return keyword.value
    return node.dyn_args or node.dyn_kwargs  # translate(*names): not a literal; no argument at all: None


def _lexed_references(source: str, name: str) -> TemplateReferences:
    """Literal imports and tables of a text that does not parse, from Jinja's tokens up to the first it cannot read."""
    snippets: dict[str, None] = {}
    tables: dict[str, None] = {}
    window: list[tuple[str, object]] = []  # the last five tokens as (type, value)
    try:
        for token in _PARSER.lexer.tokenize(source, name):
            window = [*window[-4:], (token.type, token.value)]
            if token.type == "name" and len(window) > 1 and window[-2][0] == "pipe":  # | human_name_from_xpn
                tables.update(dict.fromkeys(TABLES_READ.get(token.value, ())))
            if token.type != "string":
                continue
            kinds = [kind for kind, _ in window]
            values = [value for _, value in window]
            filtered = kinds[-4:-1] == ["pipe", "name", "lparen"] and values[-3] in TABLE_FILTERS  # | translate("x"
            mapped = kinds == MAP_TOKENS and values[0] == "map" and values[2] in TABLE_FILTERS  # map("translate", "x"
            if kinds[-3:-1] == ["block_begin", "name"] and values[-2] in IMPORT_TAGS:  # {% import "x"
                snippets[token.value] = None
            elif filtered or mapped:
                tables[token.value] = None
    except TemplateSyntaxError:
        pass  # what was read before the unreadable token stands
    return TemplateReferences(tuple(snippets), tuple(tables), (), complete=False)
