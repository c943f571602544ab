"""Stage 1: turn a source payload into the structure a template reads as `msg`.

| format   | `msg` is                                                       | options                         |
|----------|----------------------------------------------------------------|---------------------------------|
| `hl7v2`  | `Message` (see hl7v2.py): `msg.PID[5][1]`, `msg.all("OBX")`    | `encoding` (default utf-8)      |
| `json`   | the parsed JSON value (dicts, lists, strings, numbers)         | `encoding`                      |
| `ndjson` | a list of parsed JSON values, one per non-blank line           | `encoding`                      |
| `xml`    | `XmlNode` of the root element (see xmlsource.py)               |                                 |
| `csv`    | a list of rows, each a dict of header → text                   | `delimiter`, `quotechar`, `encoding` |
| `fhir`   | a FHIR resource as a dict (from FHIR JSON, XML or RDF Turtle)   | `encoding`                      |

Every failure is a coded MappingError (FS-SRC-*, FS-LIM-001); nothing else escapes.
"""

from __future__ import annotations

import csv
import io
import re

import orjson

from .errors import ErrorCode, MappingError
from .formats import detect_format, loads
from .formats import parse as parse_resource
from .hl7v2 import parse_hl7v2
from .limits import Limits
from .xmlsource import parse_xml

SOURCE_FORMATS = ("hl7v2", "json", "ndjson", "xml", "csv", "fhir")
# Control characters no text format uses. Kept: tab/CR/LF, VT and FS (HL7 MLLP framing), ESC.
BINARY = re.compile(r"[\x00-\x08\x0e-\x1a\x1d-\x1f]")
# The same characters one by one: `c in text` is a memchr-speed scan, three times faster than the regex over a 48 KB
# document, so the regex runs only to name the first one found.
_BINARY_CHARS = tuple(chr(code) for code in (*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1D, 0x20)))
# UTF-8 writes each of them as that one byte and no other character uses such a byte: UTF-8 bytes are scanned
# instead of their text (memchr over bytes; the text of a document with one character past U+00FF is two bytes a
# character).
_BINARY_BYTES = tuple(map(ord, _BINARY_CHARS))


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def decode_payload(payload: bytes | str, *, encoding: str, limits: Limits) -> str:
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", "surrogatepass"))
    if size > limits.max_input_bytes:
        raise MappingError(
            ErrorCode.LIM_INPUT_BYTES,
            f"The payload is {size:,} bytes; this mapping accepts at most {limits.max_input_bytes:,}.",
        )
    utf8_bytes = isinstance(payload, bytes) and _is_utf8(encoding)
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8-sig" if utf8_bytes else encoding)
        except LookupError as exc:
            raise MappingError(ErrorCode.SRC_BAD_OPTION, f"Unknown text encoding '{encoding}'.") from exc
        except UnicodeDecodeError as exc:
            raise MappingError(
                ErrorCode.SRC_NOT_TEXT,
                f"The payload is not valid {encoding} text (byte {exc.start:,} is "
                f"{payload[exc.start : exc.start + 1]!r}). Set the source's encoding option (e.g. latin-1) "
                "or fix the file.",
            ) from exc
    else:
        text = payload.removeprefix("\ufeff")
    if not text.strip():
        raise MappingError(ErrorCode.SRC_EMPTY, "The payload is empty.")
    if utf8_bytes:
        suspect = any(code in payload for code in _BINARY_BYTES)
    else:
        suspect = any(char in text for char in _BINARY_CHARS)
    binary = BINARY.search(text) if suspect else None
    if binary:
        raise MappingError(
            ErrorCode.SRC_NOT_TEXT,
            f"The payload holds binary data (control character {binary.group()!r} at offset {binary.start():,}); "
            "expected text.",
        )
    return text


def _parse_utf8_xml(payload: bytes, limits: Limits) -> object:
    """A UTF-8 XML payload parsed from its bytes, without decoding them first: libxml2 refuses what decode_payload
    would (bytes that are not UTF-8, the control characters of BINARY: XML allows none of them, an empty document),
    so only a payload it refuses is decoded, and decode_payload's error, if it has one, wins as before. Decoding and
    scanning a C-CDA document cost a tenth of its parse (tests/engine/test_xml_undecoded.py)."""
    if len(payload) > limits.max_input_bytes:
        decode_payload(payload, encoding="utf-8", limits=limits)  # its FS-LIM-001, before any parsing
    try:
        return parse_xml(payload, encoding="utf-8")
    except MappingError:
        decode_payload(payload, encoding="utf-8", limits=limits)
        raise


def _json_error(exc: orjson.JSONDecodeError, what: str, code: ErrorCode = ErrorCode.JSON_INVALID) -> MappingError:
    return MappingError(code, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.")


def parse_json(text: str) -> object:
    try:
        return loads(text)  # orjson, but a decimal written 0.70 stays 0.70
    except orjson.JSONDecodeError as exc:
        raise _json_error(exc, "The payload") from exc


def parse_ndjson(text: str) -> list:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(loads(line))
        except orjson.JSONDecodeError as exc:
            raise _json_error(exc, f"Line {number}", ErrorCode.NDJSON_INVALID) from exc
    return records


def parse_csv(text: str, *, delimiter: str = ",", quotechar: str = '"') -> list[dict[str, str]]:
    if len(delimiter) != 1 or len(quotechar) != 1:
        raise MappingError(ErrorCode.SRC_BAD_OPTION, "CSV delimiter and quotechar must be single characters.")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quotechar, strict=True)
    try:
        header = next(reader)
        if not any(name.strip() for name in header):
            raise MappingError(ErrorCode.CSV_NO_HEADER, "The CSV's first line must be a header naming the columns.")
        names = [name.strip() for name in header]
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(names):
                raise MappingError(
                    ErrorCode.CSV_RAGGED,
                    f"CSV line {reader.line_num} has {len(row)} columns but the header has {len(names)}. "
                    "Check the delimiter option and quoting.",
                )
            rows.append(dict(zip(names, row, strict=True)))
    except csv.Error as exc:
        raise MappingError(ErrorCode.CSV_RAGGED, f"CSV line {reader.line_num}: {exc}.") from exc
    return rows


def parse_fhir(text: str) -> dict:
    """A FHIR resource in JSON, XML or RDF Turtle (told apart by the first character: `{`, `<`, else Turtle) as FHIR
    JSON, every element checked against the R4 definitions; decimals keep their digits. XML still refuses DTDs."""
    return parse_resource(text, detect_format(text))


def parse_source(payload: bytes | str, source_format: str, *, options: dict | None = None, limits: Limits) -> object:
    options = options or {}
    if source_format not in SOURCE_FORMATS:
        raise MappingError(
            ErrorCode.SRC_UNKNOWN_FORMAT,
            f"Unknown source format '{source_format}'. Use one of: {', '.join(SOURCE_FORMATS)}.",
        )
    encoding = str(options.get("encoding") or "utf-8")
    if source_format == "xml" and type(payload) is bytes and _is_utf8(encoding):
        return _parse_utf8_xml(payload, limits)
    text = decode_payload(payload, encoding=encoding, limits=limits)
    if source_format == "hl7v2":
        return parse_hl7v2(text.strip("\x0b\x1c\r\n\t "))  # MLLP start/end blocks, if the sender left them
    if source_format == "json":
        return parse_json(text)
    if source_format == "ndjson":
        return parse_ndjson(text)
    if source_format == "xml":
        return parse_xml(text)
    if source_format == "csv":
        return parse_csv(text, delimiter=options.get("delimiter", ","), quotechar=options.get("quotechar", '"'))
    return parse_fhir(text)
