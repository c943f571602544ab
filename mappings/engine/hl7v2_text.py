r"""The ER7 text layer under the HL7 v2 parser: encoding characters, escape sequences, positions, line numbers.

Everything here works on plain strings, beneath the node model in hl7v2.py: the encoding characters MSH-1 and MSH-2
declare (checked so that splitting is unambiguous), the escape sequences a leaf value decodes when printed
(``\F\ \S\ \Xhhhh\ \.br\`` ...), the 1-based positions templates index with, and the line number an error cites.
It is kept apart so that hl7v2.py holds only the parser and the template-facing model. Names are private to the parser,
except `read_value`, `RawValue` and `PlainValue` (with the encoding positions and `_decode` they read with): the
data-type filters read a value's parts through them without building nodes. Templates and the rest of the engine use
hl7v2.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mappings.engine.errors import ErrorCode, MappingError

# Encoding characters travel as one tuple, in MSH-2 order after the field separator.
_FS, _COMP, _REP, _ESC, _SUB, _TRUNC = range(6)
_DEFAULT_ENC = ("|", "^", "~", "\\", "&", "")
# MSH-1 and MSH-2 are literal text. Giving them separators that can never occur inside a segment (lines are split on
# newlines) lets them reuse the ordinary node classes without ever being split or decoded.
_LITERAL_ENC = ("\n", "\n", "\n", "\n", "\n", "")
# Segments whose fields 1 and 2 are the separator and the encoding characters.
_HEADER_SEGMENTS = frozenset({"MSH", "FHS", "BHS"})

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# What may precede MSH: a BOM, whitespace, and the MLLP start-of-block byte of a message captured off the wire.
_LEADING = "\ufeff\x0b \t\r\n"
# Segments that close a batch envelope (FHS/BHS open it).
_TRAILERS = frozenset({"BTS", "FTS"})
# A spec-style path for Message.get: "PID-5", "PID.5.1", "PID-3(2).1", "OBX(2)-5.1.2".
_PATH = re.compile(
    r"\s*(?P<seg>[A-Za-z0-9]{3})(?:\((?P<occ>\d+)\))?"
    r"(?:[-.](?P<field>\d+)(?:\((?P<rep>\d+)\))?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?\s*"
)


def _after_envelope(body: str) -> str:
    """The text after the FHS/BHS lines that open a batch envelope."""
    while body.startswith(("FHS", "BHS")):
        match = _LINE_BREAK.search(body)
        body = body[match.end() :].lstrip(_LEADING) if match else ""
    return body


def _encoding(head: str) -> tuple[str, str, str, str, str, str]:
    """The separators the MSH line declares in MSH-1 and MSH-2, checked so that splitting is unambiguous."""
    fs = head[3:4]
    if not fs or fs.isalnum() or fs.isspace():
        raise MappingError(
            ErrorCode.HL7_BAD_ENCODING,
            f"MSH must be followed directly by the field separator (normally '|', as in 'MSH|^~\\&|'), found {fs!r}.",
        )
    end = head.find(fs, 4)
    chars = head[4:] if end < 0 else head[4:end]
    if len(chars) < 4:
        raise MappingError(
            ErrorCode.HL7_BAD_ENCODING,
            f"MSH-2 must give 4 encoding characters (component, repetition, escape, sub-component: normally "
            f"'^~\\&'), found {chars!r}.",
        )
    if len(chars) == 5 and chars[2] == chars[3]:
        # '^~\\&': the escape character doubled, as when a message was pasted from a string literal. Unambiguous, so
        # read it as '^~\&' rather than refuse a message the sender's other systems accept.
        chars = chars[:3] + chars[4]
    if len(chars) > 5:
        raise MappingError(
            ErrorCode.HL7_BAD_ENCODING,
            f"MSH-2 must be 4 encoding characters (5 with the v2.7 truncation character), normally '^~\\&', found "
            f"{chars!r}. Is the field separator after MSH-2 missing?",
        )
    for ch in chars:
        if ch.isalnum() or ch.isspace():
            raise MappingError(
                ErrorCode.HL7_BAD_ENCODING,
                f"MSH-2 {chars!r} uses {ch!r} as an encoding character; letters, digits and spaces cannot be "
                "separators. The usual value is '^~\\&'.",
            )
    seen = fs
    for ch in chars:
        if ch in seen:
            raise MappingError(
                ErrorCode.HL7_BAD_ENCODING,
                f"MSH-2 {chars!r} uses {ch!r} twice (counting the field separator {fs!r}); every encoding character "
                "must be different or fields cannot be split. The usual value is '^~\\&'.",
            )
        seen += ch
    return (fs, chars[0], chars[1], chars[2], chars[3], chars[4:5])


def _line_number(text: str, body: str, lines: list[str], line: str) -> int:
    """1-based line of `line` in the original text, counting CR, LF and CRLF each as one line break."""
    skipped = text[: len(text) - len(body)]  # BOM and blank lines stripped before MSH
    return lines.index(line) + 1 + len(_LINE_BREAK.findall(skipped))


def _index(n: object) -> int:
    """A 1-based position from an int or a string of digits; anything else is not a position (KeyError)."""
    if type(n) is int:
        return n
    if isinstance(n, int):
        return int(n)
    if isinstance(n, str) and n.isascii() and n.strip().isdigit():
        return int(n)
    raise KeyError(n)


@lru_cache(maxsize=64)
def _decoder(enc: tuple[str, ...]):
    esc = re.escape(enc[_ESC])
    pattern = re.compile(
        esc + r"(F|S|T|R|E|P|H|N|X(?:[0-9A-Fa-f]{2})*|C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{4}(?:[0-9A-Fa-f]{2})?"
        r"|\.br|\.sp *\+?(\d*)|\.(?:fi|nf|ce|in *[+-]?\d*|ti *[+-]?\d*|sk *\+?\d*))" + esc
    )
    simple = {"F": enc[_FS], "S": enc[_COMP], "T": enc[_SUB], "R": enc[_REP], "E": enc[_ESC], "H": "", "N": ""}
    if enc[_TRUNC]:
        simple["P"] = enc[_TRUNC]

    def replace(match: re.Match) -> str:
        code = match.group(1)
        if code in simple:
            return simple[code]
        head = code[0]
        if head == "X":
            data = bytes.fromhex(code[1:])
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1")
        if code == ".br":
            return "\n"
        if code.startswith(".sp"):
            return "\n" * max(1, int(match.group(2) or 1))
        if head in "CM.":
            return ""  # character-set switches and layout commands have no meaning in a plain string
        return match.group(0)  # \P\ without a declared truncation character: keep as sent

    return lambda s: pattern.sub(replace, s)


def _decode(s: str, enc: tuple[str, ...]) -> str:
    """The text of one leaf value: escape sequences decoded, the HL7 null "" read as empty."""
    if s == '""':
        return ""
    if enc[_ESC] not in s:
        return s
    return _decoder(enc)(s)


class RawValue:
    """One HL7 v2 value's parts read from its raw text: a repetition's components (`sep` _COMP) or a component's
    sub-components (`sep` _SUB). `has(n)`, `text(n)`, `has_sub(n, k)` and `sub(n, k)` answer what `bool(node[n])`,
    `str(node[n])`, `bool(node[n][k])` and `str(node[n][k])` answer on the parsed node, without building a node per
    part: the data-type filters (filters/hl7v2_types.py) read a dozen parts of each value, most of them once."""

    __slots__ = ("_enc", "_esc", "_parts", "_sub")

    def __init__(self, raw: str, enc: tuple[str, ...], sep: int) -> None:
        self._parts = raw.split(enc[sep]) if raw else []
        self._enc = enc
        self._sub = enc[_SUB]
        self._esc = enc[_ESC]

    def has(self, n: int) -> bool:
        """Any content in part n: false for an absent or empty part, only separators, or the HL7 null ""."""
        parts = self._parts
        if n > len(parts):
            return False
        raw = parts[n - 1]
        if not raw:
            return False
        sub = self._sub
        if raw[0] != '"' and raw[0] != sub:
            return True
        return any(leaf and leaf != '""' for leaf in raw.split(sub))

    def text(self, n: int) -> str:
        """Part n as it prints: its first sub-component, escape sequences decoded, "" for the HL7 null."""
        parts = self._parts
        if n > len(parts):
            return ""
        raw = parts[n - 1]
        i = raw.find(self._sub)
        if i >= 0:
            raw = raw[:i]
        if raw == '""':
            return ""
        return _decoder(self._enc)(raw) if self._esc in raw else raw

    def parts(self, count: int) -> tuple[list[str], list]:
        """Parts 1..count at once, `texts[n]` as `text(n)` and `has[n]` as `has(n)` answer (index 0 unused): a
        data-type filter reads most parts of its value, and a list read costs a fraction of a method call."""
        sub, esc = self._sub, self._esc
        texts, has = [""], [False]
        for raw in self._parts[:count]:
            if not raw:
                texts.append("")
                has.append(False)
                continue
            i = raw.find(sub)
            first = raw if i < 0 else raw[:i]
            if first == '""':
                first = ""
            elif esc in first:
                first = _decoder(self._enc)(first)
            texts.append(first)
            # Content is judged on the raw text: an escape sequence that prints nothing is still content.
            has.append((raw[0] != '"' and raw[0] != sub) or any(leaf and leaf != '""' for leaf in raw.split(sub)))
        missing = count + 1 - len(texts)
        if missing > 0:
            texts += [""] * missing
            has += [False] * missing
        return texts, has

    def subs(self, n: int) -> list[str]:
        """The raw sub-components of part n (none for an empty part)."""
        parts = self._parts
        raw = parts[n - 1] if n <= len(parts) else ""
        return raw.split(self._sub) if raw else []

    def sub_texts(self, n: int, count: int) -> list[str | None]:
        """Sub-components 1..count of part n as they print, None where `has_sub` is false: one split for all."""
        subs = self.subs(n)
        enc = self._enc
        texts = [_decode(raw, enc) if raw and raw != '""' else None for raw in subs[:count]]
        return texts + [None] * (count - len(texts))

    def has_sub(self, n: int, k: int) -> bool:
        """Any content in sub-component k of part n."""
        subs = self.subs(n)
        return k <= len(subs) and subs[k - 1] != "" and subs[k - 1] != '""'

    def sub(self, n: int, k: int) -> str:
        """Sub-component k of part n as it prints."""
        subs = self.subs(n)
        return _decode(subs[k - 1], self._enc) if k <= len(subs) and subs[k - 1] else ""


class PlainValue(RawValue):
    """A RawValue whose text holds no sub-component separator, escape character or quote, as most values are: each
    part prints as it is sent and has content when it is not empty, so no part is searched or decoded."""

    __slots__ = ()

    def has(self, n: int) -> bool:
        parts = self._parts
        return n <= len(parts) and parts[n - 1] != ""

    def text(self, n: int) -> str:
        parts = self._parts
        return parts[n - 1] if n <= len(parts) else ""

    def parts(self, count: int) -> tuple[list[str], list]:
        # A part prints as it is sent, and has content exactly when its text is not empty: one list serves both.
        texts = ["", *self._parts]
        missing = count + 1 - len(texts)
        if missing > 0:
            texts += [""] * missing
        return texts, texts

    def has_sub(self, n: int, k: int) -> bool:
        return k == 1 and self.has(n)

    def sub(self, n: int, k: int) -> str:
        return self.text(n) if k == 1 else ""


def read_value(raw: str, enc: tuple[str, ...], sep: int) -> RawValue:
    """The parts of one value (`sep` as for RawValue): a PlainValue when three scans of the text show it can be one."""
    if enc[_SUB] in raw or enc[_ESC] in raw or '"' in raw:
        return RawValue(raw, enc, sep)
    return PlainValue(raw, enc, sep)
