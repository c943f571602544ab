"""split_messages: one input file (HL7 v2, NDJSON, JSON, CSV, XML, or a zip of them) into the messages a mapping
converts one at a time, streamed, limited, keyed and located — on the shared corpus."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from mappings.engine import (
    Limits,
    MappingError,
    SplitLimits,
    SplitMessage,
    parse_source,
    split_messages,
)
from tests.engine.test_hl7v2_parser import CORPUS

HL7 = CORPUS / "fhir-converter" / "hl7v2"
FIVE = CORPUS / "more" / "hl7v2" / "cdc-oru-r01-v2.5.1-five-messages-one-file.hl7"
ADT = HL7 / "ADT-A01-01.hl7"  # LF line breaks, control id MSG00001
PATIENT = CORPUS / "fhir-converter" / "json" / "ExamplePatient.json"
BUNDLE = CORPUS / "fhir-converter" / "json" / "bundle.json"
CCD = CORPUS / "fhir-converter" / "ccda" / "CCD.ccda"
HL7_FILES = sorted(HL7.glob("*.hl7")) + sorted((CORPUS / "more" / "hl7v2").glob("*.hl7"))


def split(data, source_format: str = "hl7v2", **options) -> list[SplitMessage]:
    messages = list(split_messages(data, source_format=source_format, **options))
    assert len({message.key for message in messages}) == len(messages), "keys must be unique within one split"
    return messages


def split_error(data, source_format: str = "hl7v2", **options) -> MappingError:
    with pytest.raises(MappingError) as caught:
        list(split_messages(data, source_format=source_format, **options))
    return caught.value


def segments(path: Path) -> list[bytes]:
    """The corpus message's segments, without line breaks."""
    return [line for line in path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines() if line.strip()]


def corpus_json(path: Path) -> object:
    return orjson.loads(path.read_bytes().decode("latin-1" if path == BUNDLE else "utf-8"))  # bundle.json is Latin-1


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


ADT_SEGMENTS = segments(ADT)
ADT_PAYLOAD = b"\r".join(ADT_SEGMENTS).decode()
# A second message: the same ADT with its own control id (MSH-10).
OTHER_SEGMENTS = [ADT_SEGMENTS[0].replace(b"|MSG00001|", b"|MSG00002|"), *ADT_SEGMENTS[1:]]


# --- HL7 v2 ------------------------------------------------------------------------------------------------------


def test_it_splits_the_five_message_corpus_file_at_each_msh():
    messages = split(FIVE.open("rb"), filename=FIVE.name)
    assert [message.key for message in messages] == [
        "20230208085007-001716160",
        "6479",
        "3EC71CA3118B81468C4BD09956360B18",
        "202010281793497",
        "OE4530T20221130082944",
    ]
    assert [message.origin for message in messages] == [f"{FIVE.name} line {n}" for n in (1, 17, 26, 64, 76)]
    for message in messages:
        assert message.source_format == "hl7v2"
        assert message.payload.startswith("MSH|") and "\n" not in message.payload
        assert parse_source(message.payload, "hl7v2", limits=Limits()).control_id == message.key


@pytest.mark.parametrize(
    ("separator", "between"),
    [(b"\r", b"\r"), (b"\n", b"\n"), (b"\r\n", b"\r\n"), (b"\r\n", b"\n"), (b"\n", b"\r\n\r\n\n")],
    ids=["cr", "lf", "crlf", "mixed", "blank-lines"],
)
def test_it_splits_on_any_line_break(separator, between):
    data = separator.join(ADT_SEGMENTS) + between + separator.join(OTHER_SEGMENTS) + separator
    messages = split(data, filename="two.hl7")
    assert [message.key for message in messages] == ["MSG00001", "MSG00002"]
    assert messages[0].payload == ADT_PAYLOAD
    assert messages[1].payload == b"\r".join(OTHER_SEGMENTS).decode()
    blank_lines = between.count(b"\n") - 1 if between.count(b"\n") > 1 else 0
    assert messages[1].origin == f"two.hl7 line {len(ADT_SEGMENTS) + 1 + blank_lines}"


def test_it_strips_mllp_framing():
    frame = b"\x0b" + b"\r".join(ADT_SEGMENTS) + b"\x1c\r"
    messages = split(frame + frame + b"\x0b" + b"\r".join(OTHER_SEGMENTS) + b"\x1c\r")
    assert [message.key for message in messages] == ["MSG00001", "MSG00001#2", "MSG00002"]
    assert {message.payload for message in messages[:2]} == {ADT_PAYLOAD}


@pytest.mark.parametrize("envelope", [True, False], ids=["with-envelope", "without"])
def test_it_drops_fhs_bhs_batch_envelopes(envelope):
    body = b"\r\n".join([*ADT_SEGMENTS, *OTHER_SEGMENTS])
    if envelope:
        body = b"\r\n".join([b"FHS|^~\\&|LAB|F", b"BHS|^~\\&|LAB|B", body, b"BTS|2", b"FTS|1"])
    messages = split(body)
    assert [message.payload for message in messages] == [ADT_PAYLOAD, b"\r".join(OTHER_SEGMENTS).decode()]


def test_it_drops_envelopes_between_two_batches():
    body = b"\n".join([b"BHS|^~\\&|B1", *ADT_SEGMENTS, b"BTS|1", b"", b"BHS|^~\\&|B2", *OTHER_SEGMENTS, b"BTS|1"])
    messages = split(body)
    assert [message.payload.splitlines()[-1] for message in messages] == [
        ADT_SEGMENTS[-1].decode(),
        OTHER_SEGMENTS[-1].decode(),
    ]


def test_it_keys_messages_without_a_control_id_by_file_and_number():
    no_id = b"MSH|^~\\&|APP|FAC|||20240101||ADT^A01||P|2.5\rPID|1"
    assert [message.key for message in split(no_id + b"\r" + no_id, filename="feed.hl7")] == [
        "feed.hl7#1",
        "feed.hl7#2",
    ]
    assert [message.key for message in split(no_id)] == ["input#1"]


def test_it_refuses_text_before_the_first_msh_naming_its_line():
    error = split_error(b"\r\n" + b"BHS|^~\\&\r\nHello there\r\n" + b"\r".join(ADT_SEGMENTS), filename="feed.hl7")
    assert error.code == "FS-SRC-010"
    assert error.message.startswith("feed.hl7 line 3: 'Hello there' comes before the first MSH")


def test_it_reads_a_message_that_is_not_utf8_as_latin1():
    latin1 = b"\r".join(OTHER_SEGMENTS).replace(b"|EVERYMAN&", "|MÜLLER&".encode("latin-1"))
    messages = split(b"\xef\xbb\xbf" + b"\r".join(ADT_SEGMENTS) + b"\r" + latin1)
    assert messages[0].payload == ADT_PAYLOAD  # the BOM dropped
    assert "MÜLLER" in messages[1].payload
    assert str(parse_source(messages[1].payload, "hl7v2", limits=Limits()).PID[5][1][1]) == "MÜLLER"


@pytest.mark.parametrize("path", HL7_FILES, ids=lambda path: path.name)
def test_it_splits_every_corpus_hl7_file_into_messages_the_parser_accepts(path):
    messages = split(path.read_bytes(), filename=path.name)
    assert len(messages) >= 1
    for message in messages:
        if path.name == "cdc-oru-r01-bad-msh2-delimiters.hl7":  # MSH-2 is '&&&&': split, then refused when parsed
            with pytest.raises(MappingError, match="MSH-2"):
                parse_source(message.payload, "hl7v2", limits=Limits())
            continue
        assert parse_source(message.payload, "hl7v2", limits=Limits()).MSH


# --- streaming ---------------------------------------------------------------------------------------------------


class CountingReader(io.RawIOBase):
    """A raw file of `copies` messages made up as it is read, counting the bytes handed out."""

    def __init__(self, message: bytes, copies: int) -> None:
        self.message, self.left, self.handed_out, self.pending = message, copies, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while len(self.pending) < len(buffer) and self.left:
            self.pending += self.message
            self.left -= 1
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        self.handed_out += size
        return size


def test_it_yields_the_first_message_before_reading_the_whole_file():
    message = b"\r".join(ADT_SEGMENTS) + b"\r"
    raw = CountingReader(message, copies=20_000)  # 170 MB
    messages = split_messages(io.BufferedReader(raw), source_format="hl7v2", filename="big.hl7")
    assert next(messages).payload == ADT_PAYLOAD
    assert raw.handed_out < 4 * 1024 * 1024
    assert next(messages).key == "MSG00001#2"


def test_it_reads_a_generator_of_chunks_cut_anywhere():
    data = b"\r\n".join([*ADT_SEGMENTS, *OTHER_SEGMENTS]) + b"\r\n"
    chunks = (data[at : at + 7] for at in range(0, len(data), 7))  # CRLF and MSH cut across chunks
    messages = split(chunks, filename="cut.hl7")
    assert [message.key for message in messages] == ["MSG00001", "MSG00002"]
    assert messages[1].origin == f"cut.hl7 line {len(ADT_SEGMENTS) + 1}"


def test_it_refuses_a_message_over_the_size_limit_without_reading_on():
    raw = CountingReader(b"\r".join(ADT_SEGMENTS[1:]) + b"\r", copies=100_000)  # one MSH, then PIDs forever
    stream = io.BufferedReader(raw)
    error = split_error(after(b"\r".join(ADT_SEGMENTS) + b"\r", stream), limits=SplitLimits(max_message_bytes=100_000))
    assert error.code == "FS-SRC-063"
    assert error.message.startswith("input line 1: a message of ")
    assert raw.handed_out < 4 * 1024 * 1024


def after(first: bytes, stream: io.BufferedReader) -> Iterator[bytes]:
    """`first`, then the stream in chunks: an input whose size nobody knows."""
    yield first
    while chunk := stream.read(65536):
        yield chunk


# --- JSON, NDJSON ------------------------------------------------------------------------------------------------


def test_it_splits_ndjson_by_line():
    data = b'{"id": 1}\n\n{"id": 2}\r\n   \n{"id": 3}'
    messages = split(data, "ndjson", filename="data.ndjson")
    assert [(m.key, m.payload, m.source_format, m.origin) for m in messages] == [
        ("data.ndjson#1", '{"id": 1}', "json", "data.ndjson line 1"),
        ("data.ndjson#2", '{"id": 2}', "json", "data.ndjson line 3"),
        ("data.ndjson#3", '{"id": 3}', "json", "data.ndjson line 5"),
    ]


def test_it_reads_json_with_one_value_per_line_as_ndjson():
    lines = [orjson.dumps(corpus_json(path)) for path in (PATIENT, BUNDLE)]
    messages = split(b"\n".join(lines), "json", filename="two.json")
    assert [orjson.loads(message.payload) for message in messages] == [orjson.loads(line) for line in lines]
    assert [message.key for message in messages] == ["two.json#1", "two.json#2"]


def test_it_names_the_ndjson_line_that_is_not_json():
    error = split_error(b'{"id": 1}\n{"id": 2}\n\n{"id": 3,\n', "ndjson", filename="data.ndjson")
    assert error.code == "FS-SRC-021"
    assert error.message.startswith("data.ndjson line 4 is not valid JSON")


def test_an_array_items_decimals_keep_their_digits() -> None:
    """A FHIR decimal is its digits: `0.70` in an uploaded array stays `0.70` in the message, `1e3` stays `1e3`."""
    data = b'[{"value": 0.70, "exp": 1e3, "plain": 2.5}, {"value": 1.0}]'
    messages = split(data, "json", filename="obs.json")
    assert [message.payload for message in messages] == ['{"value":0.70,"exp":1e3,"plain":2.5}', '{"value":1.0}']


@pytest.mark.parametrize("chunk", [7, 1 << 20], ids=["tiny-chunks", "whole"])
def test_it_splits_a_json_array_into_compact_items(chunk):
    items = [corpus_json(PATIENT), corpus_json(BUNDLE), "a ] string, with {", 42, None]
    data = orjson.dumps(items, option=orjson.OPT_INDENT_2)
    messages = split((data[at : at + chunk] for at in range(0, len(data), chunk)), "json", filename="all.json")
    assert [message.payload for message in messages] == [orjson.dumps(item).decode() for item in items]
    assert [message.key for message in messages] == [f"all.json#{n}" for n in range(1, 6)]
    assert messages[0].origin == "all.json line 2"
    first_item_lines = orjson.dumps(items[:1], option=orjson.OPT_INDENT_2).count(b"\n")
    assert messages[1].origin == f"all.json line {first_item_lines + 1}"


@pytest.mark.parametrize("path", [PATIENT, BUNDLE], ids=["utf-8", "latin-1"])
def test_it_reads_a_json_object_file_as_one_message(path):
    [message] = split(path.read_bytes(), "json", filename=path.name)
    assert (message.key, message.origin, message.source_format) == (path.name, path.name, "json")
    assert orjson.loads(message.payload) == corpus_json(path)


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"[1, 2,]", "item 3 of the array is not valid JSON: it is empty"),
        (b'[1,\n 2,\n {"a": }]', "line 3: item 3 of the array is not valid JSON"),
        (b"[1, 2", "the file ends before the array's closing ']'"),
        (b"[\n1, 2\n]\n[3]", "there is more after the array's closing ']'"),
        (b'{"a": 1,\n "b": }', "line 2: not valid JSON"),
    ],
)
def test_it_names_the_place_of_bad_json(data, found):
    error = split_error(data, "json", filename="bad.json")
    assert error.code == "FS-SRC-020"
    assert found in error.message and error.message.startswith("bad.json line ")


# --- CSV, XML ----------------------------------------------------------------------------------------------------


def test_it_splits_csv_by_row_keeping_quoted_newlines():
    data = b'mrn;name;note\r\nM1;Smith;"two\r\nlines; quoted"\r\n\r\nM2;Jones;plain\r\n'
    messages = split(data, "csv", filename="patients.csv", key_column="mrn", csv_delimiter=";")
    assert [(message.key, message.origin) for message in messages] == [
        ("M1", "patients.csv line 2"),
        ("M2", "patients.csv line 5"),
    ]
    assert messages[0].payload == 'mrn;name;note\r\nM1;Smith;"two\r\nlines; quoted"\r\n'
    rows = parse_source(messages[0].payload, "csv", options={"delimiter": ";"}, limits=Limits())
    assert rows == [{"mrn": "M1", "name": "Smith", "note": "two\r\nlines; quoted"}]


def test_it_keys_csv_rows_by_number_without_a_key_column():
    messages = split(b"a,b\n1,2\n3,4\n", "csv", filename="t.csv")
    assert [message.key for message in messages] == ["t.csv#1", "t.csv#2"]
    assert messages[1].payload == "a,b\r\n3,4\r\n"


def test_it_refuses_a_key_column_the_csv_does_not_have():
    error = split_error(b"a,b\n1,2\n", "csv", filename="t.csv", key_column="mrn")
    assert (error.code, error.message) == (
        "FS-SRC-004",
        "t.csv has no column 'mrn' to take keys from; its columns: a, b.",
    )


def test_it_reads_an_xml_file_as_one_message():
    [message] = split(CCD.read_bytes(), "xml", filename=CCD.name)
    assert (message.key, message.source_format) == ("CCD.ccda", "xml")
    assert parse_source(message.payload, "xml", limits=Limits())


# --- zip ---------------------------------------------------------------------------------------------------------


def test_it_splits_every_member_of_a_zip_by_its_extension():
    archive = zipped(
        {
            "lab/2024/five.hl7": FIVE.read_bytes(),
            "lab/adt.txt": ADT.read_bytes(),
            "adt-again.er7": ADT.read_bytes(),  # the same control id as lab/adt.txt
            "people.csv": b"mrn,name\nM1,Smith\n",
            "people.ndjson": b'{"id": 1}\n{"id": 2}\n',
            "patient.json": PATIENT.read_bytes(),
            "ccd/CCD.ccda": CCD.read_bytes(),
            "lab/": b"",
            "__MACOSX/lab/._adt.txt": b"\x00\x05junk",
            ".DS_Store": b"\x00junk",
        }
    )
    messages = split(archive, "hl7v2", filename="batch.zip")
    assert [(m.key, m.source_format, m.origin) for m in messages] == [
        ("20230208085007-001716160", "hl7v2", "batch.zip:lab/2024/five.hl7 line 1"),
        ("6479", "hl7v2", "batch.zip:lab/2024/five.hl7 line 17"),
        ("3EC71CA3118B81468C4BD09956360B18", "hl7v2", "batch.zip:lab/2024/five.hl7 line 26"),
        ("202010281793497", "hl7v2", "batch.zip:lab/2024/five.hl7 line 64"),
        ("OE4530T20221130082944", "hl7v2", "batch.zip:lab/2024/five.hl7 line 76"),
        ("MSG00001", "hl7v2", "batch.zip:lab/adt.txt line 1"),
        ("adt-again.er7:MSG00001", "hl7v2", "batch.zip:adt-again.er7 line 1"),
        ("people.csv#1", "csv", "batch.zip:people.csv line 2"),
        ("people.ndjson#1", "json", "batch.zip:people.ndjson line 1"),
        ("people.ndjson#2", "json", "batch.zip:people.ndjson line 2"),
        ("patient.json", "json", "batch.zip:patient.json"),
        ("ccd/CCD.ccda", "xml", "batch.zip:ccd/CCD.ccda"),
    ]


@pytest.mark.parametrize("kind", ["bytes", "seekable-file", "generator"])
def test_it_recognises_a_zip_by_its_signature_whatever_the_format_says(kind):
    archive = zipped({"a.hl7": ADT.read_bytes(), "notes.dat": b'{"x": 1}'})
    data = {
        "bytes": archive,
        "seekable-file": io.BytesIO(archive),
        "generator": (archive[at : at + 100] for at in range(0, len(archive), 100)),
    }[kind]
    messages = split(data, "json", filename="upload.bin")  # notes.dat falls back to the format given
    assert [(message.key, message.source_format) for message in messages] == [
        ("MSG00001", "hl7v2"),
        ("notes.dat", "json"),
    ]


def test_it_refuses_a_zip_bomb_while_reading():
    bomb = zipped({"a.hl7": b"\r".join(ADT_SEGMENTS), "zeros.hl7": b"\n" * 5_000_000})
    assert len(bomb) < 20_000
    error = split_error(bomb, filename="bomb.zip", limits=SplitLimits(max_uncompressed_bytes=1_000_000))
    assert error.code == "FS-SRC-061"
    assert "bomb.zip unpacks to 5,008,5" in error.message


def test_it_refuses_a_zip_that_understates_a_member_size():
    bomb = zipped({"a.hl7": b"\r".join(ADT_SEGMENTS), "zeros.hl7": b"\n" * 2_000_000})
    directory = bomb.rindex(b"PK\x01\x02")  # the central directory entry of zeros.hl7: declare 10 bytes
    lying = bomb[: directory + 24] + (10).to_bytes(4, "little") + bomb[directory + 28 :]
    error = split_error(lying, limits=SplitLimits(max_uncompressed_bytes=1_000_000))
    assert (error.code, error.message) == (
        "FS-SRC-060",
        "input:zeros.hl7 cannot be read from the zip: Bad CRC-32 for file 'zeros.hl7'.",
    )


def test_it_counts_the_bytes_unpacked_from_all_members_together():
    members = {f"m{n}.hl7": b"\r".join(ADT_SEGMENTS) for n in range(3)}
    size = len(b"\r".join(ADT_SEGMENTS))
    assert len(split(zipped(members), limits=SplitLimits(max_uncompressed_bytes=3 * size))) == 3
    error = split_error(zipped(members), limits=SplitLimits(max_uncompressed_bytes=3 * size - 1))
    assert error.code == "FS-SRC-061"


def test_it_refuses_a_zip_with_too_many_members():
    error = split_error(
        zipped({f"m{n}.hl7": ADT.read_bytes() for n in range(5)}), limits=SplitLimits(max_zip_members=4)
    )
    assert (error.code, error.message) == ("FS-SRC-061", "input holds 5 entries; a batch reads at most 4.")


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (ADT.read_bytes(), {"source_format": "zip"}, "FS-SRC-060"),  # says zip, is not
        (ADT.read_bytes(), {"source_format": "hl7v2", "filename": "upload.zip"}, "FS-SRC-060"),
        (b"PK\x03\x04" + b"\x00" * 100, {"source_format": "hl7v2"}, "FS-SRC-060"),  # the signature, then garbage
        (zipped({"inner.zip": zipped({"a.hl7": b"MSH|^~\\&|"})}), {"source_format": "hl7v2"}, "FS-SRC-060"),
        (zipped({"readme.md": b"# hello"}), {"source_format": "zip"}, "FS-SRC-003"),  # no format for it
        (zipped({"a.hl7": b"hello\nMSH|^~\\&|"}), {"source_format": "hl7v2"}, "FS-SRC-010"),
    ],
    ids=["not-a-zip", "named-zip", "corrupt", "nested", "unknown-member", "bad-member"],
)
def test_it_raises_coded_errors_for_bad_zips(data, options, code):
    error = split_error(data, **options)
    assert error.code == code


# --- limits and options ------------------------------------------------------------------------------------------


def test_it_stops_at_the_message_count_limit():
    error = split_error(FIVE.read_bytes(), filename=FIVE.name, limits=SplitLimits(max_messages=3))
    assert error.code == "FS-SRC-062"
    assert error.message.startswith(f"{FIVE.name} line 64: the input holds more than 3 messages")


@pytest.mark.parametrize(
    ("data", "source_format"),
    [(b"\r".join(ADT_SEGMENTS), "hl7v2"), (b'{"a": "' + b"x" * 200 + b'"}\n{}', "ndjson"), (CCD.read_bytes(), "xml")],
)
def test_it_refuses_a_message_over_the_size_limit(data, source_format):
    error = split_error(data, source_format, limits=SplitLimits(max_message_bytes=100))
    assert error.code == "FS-SRC-063"
    assert error.message.startswith("input")


def test_it_checks_its_options_before_reading():
    with pytest.raises(MappingError, match="Cannot split 'pdf' input") as caught:
        split_messages(b"", source_format="pdf")
    assert caught.value.code == "FS-SRC-003"
    with pytest.raises(MappingError) as caught:
        split_messages(b"", source_format="csv", csv_delimiter=";;")
    assert caught.value.code == "FS-SRC-004"


@pytest.mark.parametrize("source_format", ["hl7v2", "json", "ndjson", "csv", "xml"])
def test_it_finds_no_message_in_a_blank_input(source_format):
    assert split(b"\xef\xbb\xbf \r\n\n", source_format) == []
