"""Stage 3: rendered text → a FHIR JSON value.

Templates are easier to write when a loop may leave a trailing comma and an optional part may print nothing, so the
parser tolerates stray commas and a member whose value printed nothing (`"code": ,` or `"code": }`, dropped like an
empty value); FHIR forbids empty strings, arrays and objects, so they are pruned; a Bundle's entries with the same
resourceType and id are merged (two segments describing one Practitioner become one resource); transaction and
batch Bundles get the `fullUrl` and `request` a server needs.
"""

from __future__ import annotations

import re
from bisect import bisect_right

import cython
import orjson

try:  # compiled: the string's buffer and memchr, for the typed scan below
    from cython.cimports.cpython.unicode import PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_KIND, PyUnicode_READ
    from cython.cimports.libc.string import memchr
except (ImportError, AttributeError):  # plain Python: cython's shadow module has no cimports, and needs none
    pass

from .errors import ErrorCode, MappingError
from .filters.values import fhir_id
from .formats.decimals import decimal_default, has_fragile_numbers, reload_keeping_decimals

STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
# Stray commas: before a closing bracket or another comma, or after an opening bracket. Three patterns, each starting
# with one literal character, which the regex engine finds by a fast search: as one pattern starting with a class,
# the scan took 2.7 times as long on the ADT demo's output (0.23 ms against 0.08) and 4 times on the CCD's.
STRAY = (re.compile(r",(?=\s*[\]},])"), re.compile(r"\[[\s,]*,"), re.compile(r"\{[\s,]*,"))
# The quick clean-up's commas, in one scan that still starts with a literal: before a closing bracket or another comma,
# or right after an opening bracket (a fixed-width look-behind). Two substring searches for `[,` and `{,` beside the
# first pattern cost 1.6 times as much on the ADT^A01 demo's output (43 µs against 27).
# Blank runs are possessive (`*+`: a bracket is no blank, so giving one back never helps): each comma tried and
# failed costs less (ADT 24 → 20 µs, CCD 40 → 30 µs for this scan, 23 → 18 µs for EMPTY_VALUE's; same matches).
QUICK_STRAY = re.compile(r",(?:(?=\s*+[\]},])|(?<=[\[{],))")
# A member whose value printed nothing: `"code": ,` or `"code": }` (a helper or a variable that gave nothing).
EMPTY_VALUE = re.compile(r":(?=[ \t\n\r]*+[,}])")  # only the colon is matched: scans in 60 % of the time
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _string_spans(text: str) -> tuple[list[tuple[int, int]], list[int]]:
    """The spans of the JSON strings in `text` and their starts, to tell syntax from text."""
    spans = [match.span() for match in STRING.finditer(text)]
    return spans, [start for start, _ in spans]


def _in_string(offset: int, spans: list[tuple[int, int]], starts: list[int]) -> bool:
    index = bisect_right(starts, offset) - 1
    return index >= 0 and offset < spans[index][1]


class _Strings:
    """Where a text's JSON strings are, asked about offsets that are not quotes, in increasing order. Without an
    escaped quote and with an even number of quotes (nearly every rendered output) the quotes pair up in order, so
    counting them (str.count, in C) answers; otherwise every string is matched once, by regex. Matching the ~2,000
    strings of a Bundle cost more than the rest of the clean-up together. Other escapes (`\\n` in a note, as in the
    ORU^R01 demo's output) end no string: with no backslash before a quote, the regex pairs the quotes the same way."""

    def __init__(self, text: str, *, parsed_after: bool = False) -> None:
        self.text = text
        # A backslash is looked for first (memchr speed): a two-character search stops at every quote of the text.
        escaped = "\\" in text and '\\"' in text
        # `parsed_after`: the caller parses what it makes of the answers and falls back if that fails. An odd number
        # of quotes, none escaped, is never JSON, so it need not be counted (a pass over the text).
        self.paired = not escaped and (parsed_after or text.count('"') % 2 == 0)
        self.position = self.quotes = 0
        self.spans: list[tuple[int, int]] = []
        self.starts: list[int] = []
        if not self.paired:
            self.spans, self.starts = _string_spans(text)

    def holds(self, offset: int) -> bool:
        """Whether `offset` is inside a string."""
        if not self.paired:
            return _in_string(offset, self.spans, self.starts)
        self.quotes += self.text.count('"', self.position, offset)
        self.position = offset
        return self.quotes % 2 == 1

    def last_before(self, offset: int) -> tuple[int, int] | None:
        """The span of the last string that starts before `offset` (which is outside any string)."""
        if not self.paired:
            index = bisect_right(self.starts, offset) - 1
            return self.spans[index] if index >= 0 else None
        end = self.text.rfind('"', 0, offset)
        return None if end < 0 else (self.text.rfind('"', 0, end), end + 1)


def _previous_char(text: str, pos: int) -> str:
    """The last character before `pos` that is not JSON whitespace ("" at the start)."""
    pos -= 1
    while pos >= 0 and text[pos] in " \t\n\r":
        pos -= 1
    return text[pos] if pos >= 0 else ""


def forgive_empty_values(text: str) -> str:
    """Blank out members whose value is missing (`"code": ,`, `"code": }`), key and colon, outside strings, so the
    member is dropped as an empty value would be pruned. Only a string key, a colon and then a comma or a closing
    brace qualify: `{"a" 1}` or an unterminated string stay errors. Blanking keeps every offset; the comma left
    behind is then a stray one."""
    candidates = list(EMPTY_VALUE.finditer(text))
    if not candidates:
        return text
    # Without a backslash the quotes are not counted first (a pass over the text: 0.1 M of the CCD demo's 5.6 M
    # instructions): matching the strings by regex would pair them in order too, leaving only an odd last one open,
    # and a member after that has no key string right before its colon, so neither way blanks it (tested).
    strings = _Strings(text, parsed_after="\\" not in text)
    pieces, done = [], 0
    for match in candidates:
        colon = match.start()
        if strings.holds(colon):
            continue  # `"a: }"` is text
        key = strings.last_before(colon)
        if key is None or text[key[1] : colon].strip(" \t\n\r"):
            continue  # no string right before the colon: not a member, left for the parser to report
        key_start = key[0]
        if key_start < done or _previous_char(text, key_start) not in ("{", ","):
            continue  # a key follows "{" or ","; `"a": "b": ,` is a mistake, not an empty value
        pieces.append(text[done:key_start])
        pieces.append(" " * (colon + 1 - key_start))
        done = colon + 1
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def remove_stray_commas(text: str, *, quick: bool = False) -> str:
    """Blank out commas JSON does not allow (after `[` or `{`; before `]`, `}` or another comma), outside strings.
    Blanking (not deleting) keeps every offset, so an error position still maps to the template line that wrote it.
    `quick`: of the commas after an opening bracket, only one right after it (`[, {…}`: an optional first item left
    out)."""
    commas = _quick_commas(text) if quick else _stray_commas(text)
    if not commas:
        return text
    pieces, done = [], 0
    for offset in commas:
        pieces.append(text[done:offset])
        pieces.append(" ")
        done = offset + 1
    pieces.append(text[done:])
    return "".join(pieces)


def _stray_commas(text: str) -> list[int]:
    """The offsets, in order, of every stray comma outside strings. Candidates are found by regex; the string spans
    are computed only when there are candidates."""
    commas = {match.start() for match in STRAY[0].finditer(text)}
    for pattern in STRAY[1:]:
        for match in pattern.finditer(text):
            commas.update(offset for offset, char in enumerate(match.group(), match.start()) if char == ",")
    if not commas:
        return []
    strings = _Strings(text)
    return [offset for offset in sorted(commas) if not strings.holds(offset)]  # a comma inside a string is text


def _quick_commas(text: str) -> list[int]:
    """The offsets, in order, of the commas the quick clean-up blanks: outside strings, and before blanks and then a
    closing bracket or another comma, or right after an opening bracket. Compiled: one typed pass over the characters
    that follows the strings as JSON reads them and jumps over their contents (the quick clean-up of ADT^A01's
    output: 0.12 M instructions, against 0.55 M with the regex scan and the quote count). As plain Python: the regex
    scan and the quote count, far faster there than a loop per character. The two agree on any text that parses once
    its commas are blanked (its strings are JSON's, which both read alike), and only such a text's clean-up is kept:
    `_parse` falls back to the full one otherwise."""
    if cython.compiled and type(text) is str:
        return _scan_quick_commas(text)
    candidates = [match.start() for match in QUICK_STRAY.finditer(text)]  # in order, each once
    if not candidates:
        return candidates
    strings = _Strings(text, parsed_after=True)
    return [offset for offset in candidates if not strings.holds(offset)]  # a comma inside a string is text


@cython.locals(
    text=str,
    n=cython.Py_ssize_t,
    i=cython.Py_ssize_t,
    pending=cython.Py_ssize_t,
    char=cython.Py_UCS4,
    before=cython.Py_UCS4,
    kind=cython.int,
    data=cython.p_void,
)
def _scan_quick_commas(text: str) -> list[int]:
    """_quick_commas in one pass over the characters (compiled, a C loop over the string's buffer that jumps over
    each string's contents): a comma outside strings waits (`pending`) until the next character that is not blank
    (`str.isspace`, the regex's `\\s`) says whether it is stray; in a string, a backslash escapes the character after
    it."""
    commas: list[int] = []
    pending = -1
    before = 0  # the character before this one
    kind, data = (PyUnicode_KIND(text), PyUnicode_DATA(text)) if cython.compiled else (0, None)
    n = len(text)
    i = 0
    while i < n:
        char = _char_at(text, kind, data, i)
        if char == '"':
            pending = -1
            i = _string_end(text, kind, data, i + 1, n)  # the closing quote: `before` below
        elif char == ",":
            if pending >= 0:
                commas.append(pending)  # `,,`: the first is stray
                pending = -1
            if before == "[" or before == "{":
                commas.append(i)
            else:
                pending = i
        elif char == "]" or char == "}":
            if pending >= 0:
                commas.append(pending)
                pending = -1
        elif not char.isspace():
            pending = -1
        before = char
        i += 1
    return commas


@cython.cfunc
@cython.inline
@cython.locals(text=str, kind=cython.int, data=cython.p_void, i=cython.Py_ssize_t)
@cython.returns(cython.Py_UCS4)
def _char_at(text: str, kind: int, data: object, i: int) -> str:
    """The character at `i`: read from the buffer when compiled."""
    if cython.compiled:
        return PyUnicode_READ(kind, data, i)
    return text[i]


@cython.cfunc
@cython.locals(
    text=str, kind=cython.int, data=cython.p_void, i=cython.Py_ssize_t, n=cython.Py_ssize_t, run=cython.Py_ssize_t
)
@cython.returns(cython.Py_ssize_t)
def _string_end(text: str, kind: int, data: object, i: int, n: int) -> int:
    """Where the string whose contents start at `i` ends: the offset of its closing quote (the first one after an
    even run of backslashes), or of the text's last character when it never closes. Compiled, on a one-byte string
    (nearly every output), `memchr` finds each quote."""
    while i < n:
        if cython.compiled and kind == PyUnicode_1BYTE_KIND:
            found = cython.declare(
                cython.p_char, cython.cast(cython.p_char, memchr(cython.cast(cython.p_char, data) + i, 34, n - i))
            )  # 34: '"'
            if found == cython.NULL:
                return n - 1
            i = found - cython.cast(cython.p_char, data)
        elif _char_at(text, kind, data, i) != '"':
            i += 1
            continue
        run = 0
        while run < i and _char_at(text, kind, data, i - 1 - run) == "\\":
            run += 1
        if run % 2 == 0:
            return i
        i += 1
    return n - 1


def parse_output(text: str) -> object:
    """Parse rendered output, tolerating stray commas and members with an empty value. Raises FS-PST-001 with the
    offset in `offset` (the caller maps it to a template line)."""
    value, parsed = _parse(text)
    return reload_keeping_decimals(parsed) if has_fragile_numbers(parsed) else value


def _parse(text: str, route: dict | None = None) -> tuple[object, str]:
    """orjson's parse (decimals as floats) and the text it parsed: `text`, or `text` cleaned.

    `route` (a dict a CompiledMapping keeps): which clean-up parsed this mapping's last output. A template's outputs
    nearly always need the same one, so the attempts that failed last time are not made first: the text as it is
    (a failed parse up to the first stray comma), and the scan for members with an empty value (0.38 M of ADT^A01's
    instructions). The answer is the same in any order: a text that parses as it is has no stray comma nor empty
    member to clean; a text with an empty member never parses after its commas alone are blanked (a colon is left
    before a comma or a bracket), so the quick clean-up of the text itself parses only when forgiving changes nothing.
    """
    last = route.get("last") if route is not None else None
    if last == "quick":
        quick = remove_stray_commas(text, quick=True)
        try:
            value = orjson.loads(quick)
        except orjson.JSONDecodeError:
            pass  # not this time: every way, as below
        else:
            return value, quick
    value, parsed, way = _parse_every_way(text, as_is=last in (None, "text"))
    if route is not None and way != last:
        route["last"] = way
    return value, parsed


def _parse_every_way(text: str, *, as_is: bool = True) -> tuple[object, str, str]:
    """_parse's value and text, and which way parsed it: "text", "quick" (commas only) or "full". `as_is=False`
    skips parsing the text as it is: if that parses, so does the clean-up, to the same value."""
    if as_is:
        try:
            return orjson.loads(text), text, "text"
        except orjson.JSONDecodeError:
            pass
    forgiven = forgive_empty_values(text)
    # A template's stray commas are a loop's last, before a closing bracket, or one right after an opening bracket
    # (48 and 14 of the 62 demo outputs; ~40 of ADT^A01's 14 M instructions went to the two regex scans for the
    # latter, which found them in any blank run). If the quick clean-up parses, the full one gives the same text:
    # every comma it blanks the full one blanks too, and a comma the full one would blank and it left (`[ ,`) is
    # not JSON. Otherwise (a comma after a blank run after `[`, or an error) the full clean-up runs.
    quick = remove_stray_commas(forgiven, quick=True)
    try:
        return orjson.loads(quick), quick, "quick" if forgiven is text else "full"
    except orjson.JSONDecodeError:
        pass
    cleaned = remove_stray_commas(forgiven)
    try:
        return orjson.loads(cleaned), cleaned, "full"
    except orjson.JSONDecodeError as exc:
        raise MappingError(
            ErrorCode.PST_NOT_JSON,
            f"The output is not JSON: {exc.msg}, near {_near(cleaned, exc.pos)}.",
            offset=exc.pos,
        ) from exc


def _near(text: str, pos: int) -> str:
    excerpt = text[max(0, pos - 40) : pos + 20]
    return repr(" ".join(excerpt.split()))


def prune(value: object) -> object:
    """Drop empty strings, whitespace-only strings, empty arrays, empty objects and nulls, recursively. Objects and
    arrays are pruned in place (the value is a freshly parsed one)."""
    return _pruned(value, [])


def _pruned(value: object, floats: list) -> object:
    """`prune`, noting each float it meets in `floats`. Leaves are handled inline (no call per string): this walk
    touches every value of every output. Objects and arrays lose their empty members in place, since nearly every
    member is kept: building a new object per object took a third of the walk, and a new array per array (and
    storing it back into its parent) most of the rest. Returns the value, or None where it is now empty."""
    kind = type(value)
    if kind is dict:
        emptied = False
        for item in value.values():  # the keys only when one goes: a dict's items cost 13 % more to walk (ADT)
            item_kind = type(item)
            if item_kind is str:
                if item and not item.isspace():
                    continue
            elif item_kind is dict or item_kind is list:
                if _pruned(item, floats) is not None:
                    continue
            elif item is not None:
                if item_kind is float:
                    floats.append(item)
                continue
            emptied = True
        if emptied:
            for key in [key for key, item in value.items() if not _kept(item)]:
                del value[key]
        return value or None
    if kind is list:
        clean = True
        for item in value:
            item_kind = type(item)
            if item_kind is str:
                if not item or item.isspace():
                    clean = False
            elif item_kind is dict or item_kind is list:
                if _pruned(item, floats) is None:
                    clean = False  # emptied in place: dropped below
            elif item is None:
                clean = False
            elif item_kind is float:
                floats.append(item)
        if not clean:
            value[:] = [item for item in value if _kept(item)]
        return value or None
    if kind is str:
        return value if value and not value.isspace() else None
    if kind is float:
        floats.append(value)
    return value


def _kept(item: object) -> bool:
    """Whether an array item or a member value stays once its own members were pruned (an emptied object or array
    does not)."""
    if type(item) is str:
        return bool(item) and not item.isspace()
    return item is not None and (bool(item) or type(item) not in (dict, list))


def _merge(into: dict, other: dict, path: str, conflicts: list[MappingError]) -> None:
    for key, value in other.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, f"{path}.{key}", conflicts)
        elif isinstance(into[key], list) and isinstance(value, list):
            into[key].extend(item for item in value if item not in into[key])
        elif into[key] != value:
            conflicts.append(
                MappingError(
                    ErrorCode.PST_DUPLICATE_CONFLICT,
                    f"Two entries for the same resource disagree on {path}.{key} ({into[key]!r} vs {value!r}); "
                    "kept the first.",
                    expression=[f"{path}.{key}"],
                    severity="warning",
                )
            )


def merge_duplicate_entries(bundle: dict) -> list[MappingError]:
    """Merge Bundle entries that describe the same resource (same resourceType and id), arrays unioned."""
    conflicts: list[MappingError] = []
    seen: dict[tuple[str, str], dict] = {}
    kept = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        key = (resource.get("resourceType"), resource.get("id")) if isinstance(resource, dict) else None
        if key is None or key[1] is None:
            kept.append(entry)
        elif key in seen:
            _merge(seen[key], resource, key[0], conflicts)
        else:
            seen[key] = resource
            kept.append(entry)
    if "entry" in bundle:
        bundle["entry"] = kept
    return conflicts


def fill_entry_urls(bundle: dict) -> None:
    """Give each entry a resource id and fullUrl, and transaction/batch entries a request (PUT Type/id: ids are
    deterministic, so re-sending the same message updates rather than duplicates)."""
    needs_request = bundle.get("type") in ("transaction", "batch")
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
        resource_type = resource["resourceType"]
        if not resource.get("id"):
            content = orjson.dumps(resource, default=decimal_default, option=orjson.OPT_SORT_KEYS)
            resource["id"] = fhir_id(resource_type, content.decode())
        resource_id = str(resource["id"])
        if "fullUrl" not in entry:
            entry["fullUrl"] = (
                f"urn:uuid:{resource_id}"
                if UUID.match(resource_id)
                else f"urn:uuid:{fhir_id(resource_type, resource_id)}"
            )
        if needs_request and "request" not in entry:
            entry["request"] = {"method": "PUT", "url": f"{resource_type}/{resource_id}"}


def postprocess(text: str, route: dict | None = None) -> tuple[object, list[MappingError]]:
    """Rendered text → (FHIR JSON, warnings). `route`: see _parse."""
    value, parsed = _parse(text, route)
    floats: list = []
    output = _pruned(value, floats)
    # Only a float can have been read with fewer digits than written (0.70 → 0.7): without one, the text need not be
    # scanned for such numbers (a regex over every ":", "," and "[" of the output) nor read again.
    if floats and has_fragile_numbers(parsed):
        output = prune(reload_keeping_decimals(parsed))
    if not isinstance(output, dict) or not isinstance(output.get("resourceType"), str):
        raise MappingError(
            ErrorCode.PST_NOT_RESOURCE,
            "The output must be one FHIR resource: a JSON object with a resourceType (a Bundle for many resources).",
        )
    warnings: list[MappingError] = []
    if output["resourceType"] == "Bundle":
        warnings = merge_duplicate_entries(output)
        fill_entry_urls(output)
    return output, warnings
