"""Split an input file into the messages a mapping converts one at a time: the engine's half of batch conversion.

    for message in split_messages(upload, source_format="hl7v2", filename="feed.hl7"):
        result = run_mapping(compiled, message.payload, source_format=message.source_format, limits=limits)

What one message is, and its key (unique within one split; `file` is the file name, "input" without one):

- `hl7v2` (.hl7 .txt .er7): each MSH up to the next, segments joined with CR. Key MSH-10, "#2", "#3" appended on
  repeats; `file#n` without one. CR, LF and CRLF line breaks (mixed too), MLLP framing, blank lines and FHS/BHS/BTS/FTS
  batch envelopes are accepted and dropped; other text before the first MSH is an error. A message that is not valid
  UTF-8 is read as Latin-1, as HL7 feeds often are.
- `ndjson` (.ndjson .jsonl), and `json` with one value per line: each non-blank line, `file#n`.
- `json` (.json), `fhir`: each item of a top-level array, re-written compactly, `file#n`; any other value is one
  message keyed `file`.
- `csv` (.csv): the header line and one data row, re-written with the same delimiter (quoted newlines survive);
  `file#n` for data row n, or the value of `key_column`.
- `xml` (.xml .ccda .cda): the whole file, keyed `file`.
- a zip, recognised by its signature whatever `source_format` says: each member (not directories, `__MACOSX/` or
  dotfiles) split by its extension, else by `source_format`; `file` is the member path, and a key another member
  already gave is prefixed with the member path.

Input is bytes, a binary file object or an iterable of byte chunks, read CHUNK_BYTES at a time, so a file of hundreds
of MB is never held whole (only a JSON document that is not an array is, within max_message_bytes, and a zip that is
not seekable is spooled to a temporary file). An empty or blank input holds no message. Every failure is a
MappingError (FS-SRC-*) whose message names the origin: file, zip member and line.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from .errors import ErrorCode, MappingError
from .formats.decimals import dumps, loads

__all__ = ["SPLIT_FORMATS", "SplitLimits", "SplitMessage", "split_messages"]

CHUNK_BYTES = 1 << 20
SPLIT_FORMATS = ("hl7v2", "json", "ndjson", "csv", "xml", "fhir", "zip")
EXTENSIONS = {".hl7": "hl7v2", ".txt": "hl7v2", ".er7": "hl7v2", ".ndjson": "ndjson", ".jsonl": "ndjson"}
EXTENSIONS |= {".json": "json", ".csv": "csv", ".xml": "xml", ".ccda": "xml", ".cda": "xml"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty archive
_BOM = b"\xef\xbb\xbf"
_ENVELOPE = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})
# A JSON string (escapes included) or one structural character; a lone quote is a string the buffer cuts short.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},"]', re.DOTALL)


@dataclass(frozen=True, slots=True)
class SplitMessage:
    key: str  # stable and unique within one split
    payload: str  # one message as the mapping receives it
    source_format: str  # hl7v2, json, csv, xml or fhir
    origin: str  # where it came from, for error messages: "feed.hl7 line 12", "batch.zip:a/b.hl7 line 3"


@dataclass(frozen=True, slots=True)
class SplitLimits:
    max_messages: int = 1_000_000
    max_message_bytes: int = 10 * 1024 * 1024
    max_zip_members: int = 10_000
    max_uncompressed_bytes: int = 2 * 1024 * 1024 * 1024  # all members together, counted as they are read


DEFAULT_SPLIT_LIMITS = SplitLimits()


def split_messages(
    data: bytes | BinaryIO | Iterable[bytes],
    *,
    source_format: str,
    filename: str = "",
    key_column: str | None = None,
    csv_delimiter: str = ",",
    limits: SplitLimits = DEFAULT_SPLIT_LIMITS,
) -> Iterator[SplitMessage]:
    """The messages of one input, in order, read as they are needed. Options are checked now, the input while
    iterating."""
    if source_format not in SPLIT_FORMATS:
        raise MappingError(
            ErrorCode.SRC_UNKNOWN_FORMAT,
            f"Cannot split '{source_format}' input. Use one of: {', '.join(SPLIT_FORMATS)}.",
        )
    if len(csv_delimiter) != 1 or csv_delimiter in '\r\n"':
        raise MappingError(ErrorCode.SRC_BAD_OPTION, f"The CSV delimiter must be one character, not {csv_delimiter!r}.")
    start = data.tell() if _is_seekable(data) else None
    return _Splitter(source_format, key_column, csv_delimiter, limits).split(data, start, filename)


@dataclass(frozen=True, slots=True)
class _File:
    name: str  # what derived keys start with: the file name, the member path, or "input"
    place: str  # how origins name it: "feed.hl7", "batch.zip:a/b.hl7"
    member: str  # the zip member path ("" outside a zip)


class _Splitter:
    """One split: its options, the message count (limited) and the keys handed out (kept unique)."""

    def __init__(self, source_format: str, key_column: str | None, csv_delimiter: str, limits: SplitLimits) -> None:
        self.source_format = source_format
        self.key_column = key_column
        self.csv_delimiter = csv_delimiter
        self.limits = limits
        self.max_bytes = limits.max_message_bytes
        self.count = 0
        self.owners: dict[str, str] = {}  # key → the zip member that gave it
        self.repeats: dict[str, int] = {}  # key → the last "#n" given for it
        self.unpacked = 0  # bytes inflated from a zip so far: declared sizes can lie

    def message(self, key: str, payload: str, source_format: str, origin: str, member: str) -> SplitMessage:
        self.count += 1
        if self.count > self.limits.max_messages:
            raise MappingError(
                ErrorCode.SPLIT_TOO_MANY_MESSAGES,
                f"{origin}: the input holds more than {self.limits.max_messages:,} messages, the most one batch takes. "
                "Split it into smaller files.",
            )
        return SplitMessage(self.unique(key, member), payload, source_format, origin)

    def unique(self, key: str, member: str) -> str:
        owner = self.owners.get(key)
        if owner is None:
            self.owners[key] = member
            return key
        if owner != member:
            # Two members of a zip gave the same key (a control id, say): the member path tells them apart.
            key = f"{member}:{key}"
            if key not in self.owners:
                self.owners[key] = member
                return key
        n = self.repeats.get(key, 1) + 1
        while f"{key}#{n}" in self.owners:
            n += 1
        self.repeats[key] = n
        self.owners[f"{key}#{n}"] = member
        return f"{key}#{n}"

    def split(self, data, start: int | None, filename: str) -> Iterator[SplitMessage]:
        chunks = _chunks(data)
        head = b""
        for chunk in chunks:  # enough bytes to recognise a zip
            head += chunk
            if len(head) >= 4:
                break
        stream = itertools.chain((head,) if head else (), chunks)
        place = filename or "input"
        if head.startswith(_ZIP_MAGIC):
            source = _seekable_copy(data, start, stream, self.limits, place)
            try:
                yield from self.zip(source, place)
            finally:
                if source is not data:
                    source.close()  # our own copy (BytesIO or a spooled file); the caller's file stays open
        elif self.source_format == "zip" or filename.lower().endswith(".zip"):
            raise MappingError(
                ErrorCode.SPLIT_NOT_ZIP,
                f"{place} is not a zip file (it does not start with the zip signature 'PK'). Upload the zip itself, "
                "or give the format of the file's content.",
            )
        else:
            yield from self.file(stream, self.source_format, _File(place, place, ""))

    def file(self, chunks: Iterable[bytes], source_format: str, where: _File) -> Iterator[SplitMessage]:
        if source_format == "hl7v2":
            return self.hl7(_line_blocks(chunks, self.max_bytes), where)
        if source_format == "ndjson":
            return self.json_lines(_line_blocks(chunks, self.max_bytes), "json", where)
        if source_format in ("json", "fhir"):
            return self.json(chunks, source_format, where)
        if source_format == "csv":
            return self.csv(_line_blocks(chunks, self.max_bytes), where)
        return self.whole(chunks, "xml", where, check_json=False)

    # --- HL7 v2 ---------------------------------------------------------------------------------------------------

    def hl7(self, blocks: Iterable[bytes], where: _File) -> Iterator[SplitMessage]:
        max_bytes, place = self.max_bytes, where.place
        pending: list[bytes] = []  # the lines of a message begun in an earlier block
        line = 1  # the number of the block's first line
        start = number = 0  # the open message's first line; messages so far
        for block in blocks:
            if b"\x0b" in block or b"\x1c" in block:
                # MLLP framing (VT … FS CR); a frame glued to the next without its CR still starts a new line.
                block = block.replace(b"\x1c\x0b", b"\r").translate(None, b"\x0b\x1c")
            lines = block.splitlines()
            # A Python pass over the lines beats bytes.find for b"MSH" here, and finds line starts only.
            heads = [at for at, text in enumerate(lines) if text[:3] == b"MSH"]
            opened = None  # where the open message starts in this block
            if not pending:
                first = heads[0] if heads else len(lines)
                _check_preamble(lines[:first], line, place)
                if not heads:
                    line += len(lines)
                    continue
                opened, start, heads = first, line + first, heads[1:]
            for head in heads:
                number += 1
                if opened is None:
                    message = self.hl7_message(pending + lines[:head], where, start, number)
                    pending = []
                else:
                    message = self.hl7_message(lines[opened:head], where, start, number)
                yield message
                opened, start = head, line + head
            pending = pending + lines if opened is None else lines[opened:]
            size = sum(map(len, pending)) + len(pending)
            if size > max_bytes:
                raise _too_large(f"{place} line {start}", size, max_bytes)
            line += len(lines)
        if pending:
            yield self.hl7_message(pending, where, start, number + 1)

    def hl7_message(self, lines: list[bytes], where: _File, line: int, number: int) -> SplitMessage:
        """One message from its lines, MSH first: empty lines and trailing batch envelope segments dropped (a line of
        spaces inside a message is left to the parser, which skips it)."""
        while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip()[:3] in _ENVELOPE):
            lines.pop()  # BTS/FTS closing a batch, BHS/FHS opening the next one, blank lines at the end
        if b"" in lines:
            lines = [kept for kept in lines if kept.strip()]
        head = lines[0]
        fields = head.split(head[3:4], 10) if len(head) > 3 else []
        control_id = _text(fields[9]).strip() if len(fields) > 9 else ""
        key, origin = control_id or f"{where.name}#{number}", f"{where.place} line {line}"
        payload = b"\r".join(lines)
        if len(payload) > self.max_bytes:
            raise _too_large(origin, len(payload), self.max_bytes)
        return self.message(key, _text(payload), "hl7v2", origin, where.member)

    # --- JSON, NDJSON ---------------------------------------------------------------------------------------------

    def json_lines(self, blocks: Iterable[bytes], source_format: str, where: _File) -> Iterator[SplitMessage]:
        line = number = 0
        for block in blocks:
            for raw in block.splitlines():
                line += 1
                stripped = raw.strip()
                if not stripped:
                    continue
                origin = f"{where.place} line {line}"
                if len(stripped) > self.max_bytes:
                    raise _too_large(origin, len(stripped), self.max_bytes)
                text = _text(stripped)  # Latin-1 JSON exists in the wild (the corpus has some): read it as such
                try:
                    orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    raise MappingError(
                        ErrorCode.NDJSON_INVALID,
                        f"{origin} is not valid JSON: {exc.msg} (column {exc.colno}). Each line of NDJSON must be "
                        "one whole JSON value.",
                    ) from exc
                number += 1
                yield self.message(f"{where.name}#{number}", text, source_format, origin, where.member)

    def json(self, chunks: Iterable[bytes], source_format: str, where: _File) -> Iterator[SplitMessage]:
        """NDJSON when the first line is a whole JSON value and more lines follow; else an array's items; else one
        document."""
        blocks = _line_blocks(chunks, self.max_bytes)
        seen: list[bytes] = []
        values: list[bytes] = []  # the first two non-blank lines
        for block in blocks:
            seen.append(block)
            values += itertools.islice((raw for raw in block.splitlines() if raw.strip()), 2 - len(values))
            if len(values) == 2 or (values and len(values[0]) > self.max_bytes):
                break
        replay = itertools.chain(seen, blocks)
        first = values[0].lstrip() if values else b""
        if not first:
            return
        if first.startswith(b"<") and source_format == "fhir":
            yield from self.whole(replay, source_format, where, check_json=False)
        elif len(values) > 1 and _is_json(values[0]):
            yield from self.json_lines(replay, source_format, where)
        elif first.startswith(b"["):
            yield from self.json_array(replay, source_format, where)
        else:
            yield from self.whole(replay, source_format, where, check_json=True)

    def json_array(self, chunks: Iterable[bytes], source_format: str, where: _File) -> Iterator[SplitMessage]:
        """Each item of a top-level array, found by bracket depth outside strings, checked and re-written compactly."""
        place = where.place
        buf = b""
        pos = 0  # where scanning resumes
        item: int | None = None  # where the current item starts (just after '[' or ',')
        depth = number = 0
        line, counted = 1, 0  # the line number at offset `counted` of buf
        closed = False
        for chunk in chunks:
            if closed:
                if chunk.strip():
                    raise _json_error(place, line, "there is more after the array's closing ']'")
                continue
            keep = item if item is not None else pos
            line += buf.count(b"\n", counted, keep)
            buf, pos, counted = buf[keep:] + chunk, pos - keep, 0
            item = 0 if item is not None else None
            while True:
                match = _JSON_TOKEN.search(buf, pos)
                if match is None or match.group() == b'"':  # done, or a string continues in the next chunk
                    pos = len(buf) if match is None else match.start()
                    break
                pos = match.end()
                token = match.group()[0]
                if token == 0x22:  # a whole string
                    continue
                if depth == 0:
                    if token != 0x5B:
                        raise _json_error(place, line + buf.count(b"\n", counted, pos), "expected a top-level array")
                    depth, item = 1, pos
                elif token in b"[{":
                    depth += 1
                elif token in b"]}" and depth > 1:
                    depth -= 1
                elif token == 0x7D:
                    raise _json_error(place, line + buf.count(b"\n", counted, pos), "'}' closes the top-level array")
                elif token == 0x2C and depth > 1:
                    pass
                else:  # ',' or the closing ']' of the top-level array: the end of an item
                    raw = buf[item : match.start()]
                    value = raw.strip()
                    if value or token == 0x2C or number:
                        at = item + len(raw) - len(raw.lstrip())
                        line, counted, number = line + buf.count(b"\n", counted, at), at, number + 1
                        yield self.array_item(value, source_format, where, line, number)
                    if token == 0x2C:
                        item = pos
                        continue
                    depth, item, closed = 0, None, True
                    if buf[pos:].strip():
                        raise _json_error(place, line, "there is more after the array's closing ']'")
                    break
            if item is not None and len(buf) - item > self.max_bytes:
                raise _too_large(f"{place} line {line}", len(buf) - item, self.max_bytes)
        if not closed:
            raise _json_error(place, line, "the file ends before the array's closing ']'")

    def array_item(self, value: bytes, source_format: str, where: _File, line: int, number: int) -> SplitMessage:
        origin = f"{where.place} line {line}"
        if len(value) > self.max_bytes:
            raise _too_large(origin, len(value), self.max_bytes)
        try:
            parsed = loads(_text(value))  # decimals keep their digits (0.70) into the message
        except orjson.JSONDecodeError as exc:
            shown = "it is empty (a doubled or trailing comma?)" if not value else exc.msg
            raise _json_error(where.place, line, f"item {number} of the array is not valid JSON: {shown}") from exc
        return self.message(f"{where.name}#{number}", dumps(parsed).decode(), source_format, origin,
                            where.member)  # fmt: skip

    def whole(self, chunks: Iterable[bytes], source_format: str, where: _File, *, check_json: bool):
        """The whole file as one message (XML, a JSON object), read up to the message size limit."""
        parts, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > self.max_bytes:
                raise _too_large(where.place, size, self.max_bytes)
            parts.append(chunk)
        data = b"".join(parts).removeprefix(_BOM)
        if not data.strip():
            return
        text = _text(data)
        if check_json:
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise _json_error(where.place, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from exc
        yield self.message(where.name, text, source_format, where.place, where.member)

    # --- CSV ------------------------------------------------------------------------------------------------------

    def csv(self, blocks: Iterable[bytes], where: _File) -> Iterator[SplitMessage]:
        place = where.place
        lines = (_text(raw) for block in blocks for raw in block.splitlines(keepends=True))
        reader = csv.reader(lines, delimiter=self.csv_delimiter, strict=True)
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.csv_delimiter, lineterminator="\r\n")
        try:
            header = next(reader, None)
            while header is not None and not "".join(header).strip() and len(header) < 2:  # blank lines first
                header = next(reader, None)
            if header is None:
                return
            names = [column.strip() for column in header]
            if not any(names):
                raise MappingError(ErrorCode.CSV_NO_HEADER, f"{place} line 1: the first line must name the columns.")
            if self.key_column is not None and self.key_column not in names:
                raise MappingError(
                    ErrorCode.SRC_BAD_OPTION,
                    f"{place} has no column '{self.key_column}' to take keys from; its columns: {', '.join(names)}.",
                )
            key_index = names.index(self.key_column) if self.key_column is not None else len(names)
            writer.writerow(header)
            head = out.getvalue()
            number, last = 0, reader.line_num
            for row in reader:
                origin, last = f"{place} line {last + 1}", reader.line_num
                if not row:
                    continue
                number += 1
                out.seek(0)
                out.truncate()
                writer.writerow(row)
                payload = head + out.getvalue()
                if len(payload) > self.max_bytes // 4 and len(payload.encode()) > self.max_bytes:
                    raise _too_large(origin, len(payload.encode()), self.max_bytes)
                key = row[key_index].strip() if key_index < len(row) else ""
                yield self.message(key or f"{where.name}#{number}", payload, "csv", origin, where.member)
        except csv.Error as exc:
            raise MappingError(ErrorCode.CSV_RAGGED, f"{place} line {reader.line_num}: {exc}.") from exc

    # --- zip ------------------------------------------------------------------------------------------------------

    def zip(self, source: BinaryIO, place: str) -> Iterator[SplitMessage]:
        limits = self.limits
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise MappingError(ErrorCode.SPLIT_NOT_ZIP, f"{place} is not a readable zip file: {exc}.") from exc
        with archive:
            members = archive.infolist()
            if len(members) > limits.max_zip_members:
                raise MappingError(
                    ErrorCode.SPLIT_ZIP_TOO_LARGE,
                    f"{place} holds {len(members):,} entries; a batch reads at most {limits.max_zip_members:,}.",
                )
            declared = sum(info.file_size for info in members)
            if declared > limits.max_uncompressed_bytes:
                raise _zip_too_large(place, declared, limits)
            for info in members:
                path = info.filename
                parts = path.split("/")
                if info.is_dir() or parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
                    continue
                suffix = "." + parts[-1].rsplit(".", 1)[-1].lower() if "." in parts[-1] else ""
                source_format = EXTENSIONS.get(suffix, self.source_format)
                where = _File(path, f"{place}:{path}", path)
                if suffix == ".zip" or info.flag_bits & 0x1:
                    what = "is a zip inside the zip: unpack it first" if suffix == ".zip" else "is encrypted"
                    raise MappingError(ErrorCode.SPLIT_NOT_ZIP, f"{where.place} {what}.")
                if source_format == "zip":
                    raise MappingError(
                        ErrorCode.SRC_UNKNOWN_FORMAT,
                        f"{where.place} has no known extension ({', '.join(EXTENSIONS)}); give the batch a source "
                        "format for such members.",
                    )
                with _open_member(archive, info, where.place) as member:
                    yield from self.file(self.member_chunks(member, where.place), source_format, where)

    def member_chunks(self, member: BinaryIO, origin: str) -> Iterator[bytes]:
        while True:
            try:
                chunk = member.read(CHUNK_BYTES)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
                raise MappingError(ErrorCode.SPLIT_NOT_ZIP, f"{origin} cannot be read from the zip: {exc}.") from exc
            if not chunk:
                return
            self.unpacked += len(chunk)
            if self.unpacked > self.limits.max_uncompressed_bytes:
                raise _zip_too_large(origin, self.unpacked, self.limits)
            yield chunk


def _is_seekable(data: object) -> bool:
    seekable = getattr(data, "seekable", None)
    return callable(seekable) and bool(seekable()) and hasattr(data, "tell")


def _chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])
        return
    read = getattr(data, "read", None)
    for chunk in iter(lambda: read(CHUNK_BYTES), b"") if read is not None else data:
        if isinstance(chunk, str):
            raise TypeError("split_messages reads bytes: open the file in binary mode ('rb')")
        if chunk:
            yield bytes(chunk)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # HL7 feeds and spreadsheet exports often are; every byte is a character


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(_text(data))
    except orjson.JSONDecodeError:
        return False
    return True


def _too_large(origin: str, size: int, max_bytes: int) -> MappingError:
    return MappingError(
        ErrorCode.SPLIT_MESSAGE_TOO_LARGE,
        f"{origin}: a message of {size:,} bytes or more is over the limit of {max_bytes:,} bytes per message. Is the "
        "format right (a message boundary missing)? Otherwise raise the batch's message size limit.",
    )


def _json_error(place: str, line: int, what: str) -> MappingError:
    return MappingError(ErrorCode.JSON_INVALID, f"{place} line {line}: {what}.")


def _zip_too_large(place: str, size: int, limits: SplitLimits) -> MappingError:
    return MappingError(
        ErrorCode.SPLIT_ZIP_TOO_LARGE,
        f"{place} unpacks to {size:,} bytes or more; a batch reads at most {limits.max_uncompressed_bytes:,} bytes "
        "from a zip. Split the upload.",
    )


def _line_blocks(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """The input in blocks of whole lines (any of CR, LF, CRLF), leading BOM dropped. A line longer than max_bytes is
    passed on unfinished: every reader's size check then refuses it, so memory stays bounded."""
    pending = b""
    first = True
    for chunk in chunks:
        data = pending + chunk if pending else chunk
        if first:
            if len(data) < 3:
                pending = data
                continue
            data, first = data.removeprefix(_BOM), False
        # A final CR may be the first half of a CRLF: keep it for the next chunk.
        end = len(data) - 1 if data.endswith(b"\r") else len(data)
        cut = max(data.rfind(b"\n", 0, end), data.rfind(b"\r", 0, end)) + 1
        if cut == 0 and len(data) <= max_bytes:
            pending = data
            continue
        cut = cut or len(data)
        pending = data[cut:]
        yield data[:cut]
    if pending:
        yield pending.removeprefix(_BOM) if first else pending


def _check_preamble(lines: list[bytes], line: int, place: str) -> None:
    """Lines before the first MSH may only be blank or batch envelope segments."""
    for raw in lines:
        stripped = raw.strip(b" \t\x00")
        if stripped and stripped[:3] not in _ENVELOPE:
            raise MappingError(
                ErrorCode.HL7_NO_MSH,
                f"{place} line {line}: {_text(stripped[:40])!r} comes before the first MSH segment. An HL7 v2 file "
                "holds messages that each start with MSH (optionally in FHS/BHS batch envelopes); is the format right?",
            )
        line += 1


def _seekable_copy(data, start: int | None, stream: Iterable[bytes], limits: SplitLimits, place: str) -> BinaryIO:
    """What zipfile needs: the caller's seekable file, or the input copied to a temporary file as it streams in."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    if start is not None:
        data.seek(start)
        return data
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 — split() closes it
    size = 0
    for chunk in stream:
        size += len(chunk)
        if size > limits.max_uncompressed_bytes:
            spool.close()
            raise _zip_too_large(place, size, limits)
        spool.write(chunk)
    spool.seek(0)
    return spool


def _open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, origin: str):
    try:
        return archive.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
        raise MappingError(ErrorCode.SPLIT_NOT_ZIP, f"{origin} cannot be read from the zip: {exc}.") from exc
