"""A compiler of the simple FHIRPath most invariants are written in, to Python closures over the parsed JSON.

org-1 `(identifier.count() + name.count()) > 0`, `where(use = 'home').empty()`, `period.exists() implies period >= 0`:
paths, literals, and/or/xor/implies, = != < > <= >= (numbers and strings of equal kind), + | in, and the functions
exists empty not count hasValue where all select first allFalse allTrue startsWith contains length. Anything else
raises UnsupportedError when compiling (invariants.py then uses fhirpathpy). A value the closure cannot judge as
FHIRPath would (dates compared as text, several items where a boolean is needed) raises FallbackError while
evaluating, for fhirpathpy to decide that one case. tests/engine/validation/test_invariants.py checks the verdicts
against fhirpathpy's on the test set.
"""

from __future__ import annotations

import re
from collections.abc import Callable

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)"
    r"|(?P<variable>%[A-Za-z]+|\$this)|(?P<op><=|>=|!=|[=<>()+|.,]))"
)
KEYWORDS = {"and", "or", "xor", "implies", "in", "true", "false"}
UCUM = "http://unitsofmeasure.org"


class UnsupportedError(Exception):
    """The expression uses FHIRPath this compiler does not know."""


class FallbackError(Exception):
    """This evaluation needs the full FHIRPath semantics (fhirpathpy)."""


Node = Callable[[list, dict], list]  # (focus collection, environment) -> collection


def compile_expression(expression: str, choice_stems: frozenset[str], type_suffixes: frozenset[str]) -> Node:
    tokens = _tokens(expression)
    parser = _Parser(tokens, choice_stems, type_suffixes)
    node = parser.expression()
    if parser.position != len(tokens):
        raise UnsupportedError(f"unexpected {tokens[parser.position]!r}")
    return node


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    expression = expression.strip()
    while position < len(expression):
        match = TOKEN.match(expression, position)
        if match is None or match.end() == position:
            raise UnsupportedError(f"cannot read {expression[position : position + 10]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(expression) and expression[position].isspace():
            position += 1
    return tokens


def truth(collection: list) -> bool | None:
    """FHIRPath's singleton evaluation to a boolean: empty is None (unknown)."""
    if not collection:
        return None
    if len(collection) == 1 and isinstance(collection[0], bool):
        return collection[0]
    if len(collection) == 1:
        return True  # a single non-boolean item counts as true
    raise FallbackError("a collection of several items where a boolean is needed")


class _Parser:
    def __init__(self, tokens, choice_stems, type_suffixes) -> None:
        self.tokens = tokens
        self.position = 0
        self.choice_stems = choice_stems
        self.type_suffixes = type_suffixes

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise UnsupportedError(f"expected {value}")
        self.position += 1
        return token

    def at(self, *values: str) -> bool:
        token = self.peek()
        return token is not None and token[1] in values and token[0] in ("op", "name")

    # implies < or/xor < and < in < = != < > <= >= < | < + < invocation
    def expression(self) -> Node:
        left = self.disjunction()
        while self.at("implies"):
            self.take()
            left = _implies(left, self.disjunction())
        return left

    def disjunction(self) -> Node:
        left = self.conjunction()
        while self.at("or", "xor"):
            operator = self.take()[1]
            left = (_or if operator == "or" else _xor)(left, self.conjunction())
        return left

    def conjunction(self) -> Node:
        left = self.membership()
        while self.at("and"):
            self.take()
            left = _and(left, self.membership())
        return left

    def membership(self) -> Node:
        left = self.equality()
        while self.at("in"):
            self.take()
            left = _in(left, self.equality())
        return left

    def equality(self) -> Node:
        left = self.comparison()
        while self.at("=", "!="):
            operator = self.take()[1]
            left = _equals(left, self.comparison(), negate=operator == "!=")
        return left

    def comparison(self) -> Node:
        left = self.union()
        while self.at("<", ">", "<=", ">="):
            operator = self.take()[1]
            left = _compare(left, self.union(), operator)
        return left

    def union(self) -> Node:
        left = self.additive()
        while self.at("|"):
            self.take()
            left = _union(left, self.additive())
        return left

    def additive(self) -> Node:
        left = self.invocation_chain()
        while self.at("+"):
            self.take()
            left = _plus(left, self.invocation_chain())
        return left

    def invocation_chain(self) -> Node:
        node = self.term()
        while self.at("."):
            self.take()
            node = _then(node, self.invocation())
        return node

    def term(self) -> Node:
        token = self.peek()
        if token is None:
            raise UnsupportedError("unexpected end")
        kind, value = token
        if kind == "op" and value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "string":
            self.take()
            literal = [value[1:-1].replace("\\'", "'")]
            return lambda focus, env: literal
        if kind == "number":
            self.take()
            number = [float(value) if "." in value else int(value)]
            return lambda focus, env: number
        if kind == "variable":
            self.take()
            return _variable(value)
        if kind == "name" and value in ("true", "false"):
            self.take()
            flag = [value == "true"]
            return lambda focus, env: flag
        return self.invocation()

    def invocation(self) -> Node:
        kind, value = self.take()
        if kind != "name" or value in KEYWORDS:
            raise UnsupportedError(f"unexpected {value}")
        name = value.strip("`")
        if self.at("("):
            self.take()
            arguments = []
            while not self.at(")"):
                arguments.append(self.expression())
                if self.at(","):
                    self.take()
            self.take(")")
            return _function(name, arguments)
        return _member(name, name in self.choice_stems, self.type_suffixes)


def _variable(name: str) -> Node:
    if name == "$this":
        return lambda focus, env: env["this"]
    if name == "%ucum":
        constant = [UCUM]
        return lambda focus, env: constant
    if name in ("%resource", "%rootResource"):
        return lambda focus, env: [env["resource"]]
    raise UnsupportedError(name)


def _member(name: str, is_choice: bool, type_suffixes: frozenset[str]) -> Node:
    size = len(name)

    def member(focus: list, env: dict) -> list:
        found = []
        for item in focus:
            if type(item) is not dict:
                continue
            value = item.get(name)
            if value is None and is_choice:
                for key, candidate in item.items():
                    if key.startswith(name) and key[size:] in type_suffixes:
                        value = candidate
                        break
            if value is None:
                continue
            if type(value) is list:
                found.extend(v for v in value if v is not None)
            else:
                found.append(value)
        return found

    return member


def _then(left: Node, right: Node) -> Node:
    return lambda focus, env: right(left(focus, env), env)


def _boolean(value: bool | None) -> list:
    return [] if value is None else [value]


def _implies(left: Node, right: Node) -> Node:
    def implies(focus, env):
        condition = truth(left(focus, env))
        if condition is False:
            return [True]
        outcome = truth(right(focus, env))
        if condition is True:
            return _boolean(outcome)
        return [True] if outcome is True else []

    return implies


def _or(left: Node, right: Node) -> Node:
    def either(focus, env):
        first = truth(left(focus, env))
        if first is True:
            return [True]
        second = truth(right(focus, env))
        if second is True:
            return [True]
        return [False] if first is False and second is False else []

    return either


def _xor(left: Node, right: Node) -> Node:
    def exclusive(focus, env):
        first, second = truth(left(focus, env)), truth(right(focus, env))
        return [] if first is None or second is None else [first != second]

    return exclusive


def _and(left: Node, right: Node) -> Node:
    def both(focus, env):
        first = truth(left(focus, env))
        if first is False:
            return [False]
        second = truth(right(focus, env))
        if second is False:
            return [False]
        return [True] if first is True and second is True else []

    return both


def _plain(value) -> bool:
    return isinstance(value, str | bool | int | float)


def _equals(left: Node, right: Node, *, negate: bool) -> Node:
    def equals(focus, env):
        first, second = left(focus, env), right(focus, env)
        if not first or not second:
            return []
        if len(first) != len(second):
            return [negate]
        for a, b in zip(first, second, strict=True):
            if (type(a) is dict) != (type(b) is dict):
                return [negate]  # an element is never equal to a primitive ($this = 'problem-list-item' on a concept)
            if type(a) is dict:
                if a != b:
                    return [negate]
                continue
            if not (_plain(a) and _plain(b)) or isinstance(a, bool) != isinstance(b, bool):
                raise FallbackError("equality of mixed types")
            if isinstance(a, str) != isinstance(b, str):
                raise FallbackError("a string compared with a number")
            if a != b:
                return [negate]
        return [not negate]

    return equals


def _compare(left: Node, right: Node, operator: str) -> Node:
    def compare(focus, env):
        first, second = left(focus, env), right(focus, env)
        if not first or not second:
            return []
        if len(first) != 1 or len(second) != 1:
            raise FallbackError("comparison of collections")
        a, b = first[0], second[0]
        if (
            isinstance(a, bool)
            or isinstance(b, bool)
            or not isinstance(a, int | float)
            or not isinstance(b, int | float)
        ):
            raise FallbackError("only numbers are compared here; dates and quantities need FHIRPath's rules")
        return [{"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[operator]]

    return compare


def _union(left: Node, right: Node) -> Node:
    def union(focus, env):
        found = []
        for item in left(focus, env) + right(focus, env):
            if not _plain(item):
                raise FallbackError("union of complex values")
            if item not in found:
                found.append(item)
        return found

    return union


def _in(left: Node, right: Node) -> Node:
    def member_of(focus, env):
        item, collection = left(focus, env), right(focus, env)
        if not item:
            return []
        if len(item) != 1 or not _plain(item[0]) or not all(_plain(value) for value in collection):
            raise FallbackError("membership of complex values")
        return [item[0] in collection]

    return member_of


def _plus(left: Node, right: Node) -> Node:
    def plus(focus, env):
        first, second = left(focus, env), right(focus, env)
        if not first or not second:
            return []
        a, b = first[0], second[0]
        if len(first) == len(second) == 1 and type(a) is type(b) and type(a) in (int, float, str):
            return [a + b]
        raise FallbackError("+ of other than two numbers or two strings")

    return plus


def _function(name: str, arguments: list[Node]) -> Node:
    count = len(arguments)
    if name == "exists" and count == 0:
        return lambda focus, env: [bool(focus)]
    if name == "exists" and count == 1:
        return _exists_where(arguments[0])
    if name == "empty" and count == 0:
        return lambda focus, env: [not focus]
    if name == "count" and count == 0:
        return lambda focus, env: [len(focus)]
    if name == "not" and count == 0:
        return _not
    if name == "hasValue" and count == 0:
        return lambda focus, env: [len(focus) == 1 and type(focus[0]) is not dict]
    if name == "first" and count == 0:
        return lambda focus, env: focus[:1]
    if name in ("where", "all", "select") and count == 1:
        return _iterate(name, arguments[0])
    if name in ("allTrue", "allFalse") and count == 0:
        wanted = name == "allTrue"
        return lambda focus, env: [all(item is wanted for item in focus)]
    if name in ("startsWith", "contains") and count == 1:
        return _string_test(name, arguments[0])
    if name == "length" and count == 0:
        return _length
    raise UnsupportedError(f"{name}() with {count} arguments")


def _not(focus: list, env: dict) -> list:
    value = truth(focus)
    return [] if value is None else [not value]


def _length(focus: list, env: dict) -> list:
    if not focus:
        return []
    if len(focus) != 1 or not isinstance(focus[0], str):
        raise FallbackError("length() of other than one string")
    return [len(focus[0])]


def _exists_where(criteria: Node) -> Node:
    test = _iterate("where", criteria)
    return lambda focus, env: [bool(test(focus, env))]


def _iterate(name: str, criteria: Node) -> Node:
    def iterate(focus: list, env: dict) -> list:
        found = []
        outer = env.get("this")
        try:
            for item in focus:
                env["this"] = [item]
                outcome = criteria([item], env)
                if name == "select":
                    found.extend(outcome)
                elif name == "where":
                    if truth(outcome) is True:
                        found.append(item)
                elif truth(outcome) is not True:
                    return [False]
        finally:
            env["this"] = outer
        return [True] if name == "all" else found

    return iterate


def _string_test(name: str, argument: Node) -> Node:
    def test(focus: list, env: dict) -> list:
        text = argument(focus, env)
        if not focus or not text:
            return []
        if len(focus) != 1 or not isinstance(focus[0], str) or not isinstance(text[0], str):
            raise FallbackError(f"{name}() of other than strings")
        return [focus[0].startswith(text[0]) if name == "startsWith" else text[0] in focus[0]]

    return test
