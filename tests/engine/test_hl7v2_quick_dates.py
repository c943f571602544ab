"""The date filters' quick path (YYYYMMDD, YYYYMMDDHHMM[SS]±ZZZZ without the regex) against their general code.

The oracle is the same filter with the quick path switched off: every generated or corpus timestamp must give the
same answer and the same warnings from fhir_date, fhir_datetime and fhir_instant, in any zone.
"""

import os
import random
from pathlib import Path

import pytest
from django.conf import settings

from mappings.engine import Limits, compile_mapping
from mappings.engine.filters import dates
from mappings.engine.hl7v2 import parse_hl7v2
from mappings.engine.limits import current_budget, end_budget, start_budget

CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", settings.BASE_DIR.parent / "shared" / "corpus"))
ZONES = ("UTC", "America/New_York", "Asia/Kolkata")


def _shapes(rng: random.Random) -> str:
    """A timestamp-like text near the quick path's edges: every length, bad months, days and times, odd offsets."""
    year = rng.choice(["2024", "2023", "2000", "1900", "1989"] * 3 + ["0000", "0001", "9999"])
    month = f"{rng.randint(1, 12):02d}" if rng.random() < 0.8 else rng.choice(["00", "13", "1"])
    day = f"{rng.randint(1, 28):02d}" if rng.random() < 0.7 else rng.choice(["29", "30", "31", "00", "32"])
    hour = f"{rng.randint(0, 23):02d}" if rng.random() < 0.85 else rng.choice(["24", "29"])
    minute = f"{rng.randint(0, 59):02d}" if rng.random() < 0.9 else "60"
    second = f"{rng.randint(0, 59):02d}" if rng.random() < 0.8 else rng.choice(["60", ""])
    fraction = rng.choice(["", "", "", "", ".1", ".1234"])
    offsets = ["+0000", "-0000", "+0215", "-0500", "+1400", "-1459"] * 3 + ["+1500", "+0160", "Z", "", "+02:00"]
    offset = rng.choice(offsets)
    text = year + month + day + hour + minute + second + fraction + offset
    cut = rng.choice([len(text)] * 6 + [4, 6, 8, 8, 8, 10, 12, 14, len(text) - 1])
    text = text[:cut]
    twist = rng.random()
    if twist < 0.05:
        text = f"  {text}\t"
    elif twist < 0.08:
        text = text.replace("2", "\u0662")  # an Arabic-Indic digit: \d matches it, the quick path must not
    elif twist < 0.1:
        text = text.replace("0", "O", 1)
    elif twist < 0.12:
        text = text[:8] + "T" + text[8:]
    return text


def _generated() -> list[str]:
    rng = random.Random(14)
    texts = [_shapes(rng) for _ in range(6000)]
    texts += ["", " ", "2020", "20200229", "20210229", "19000229", "20000229", "20240229120000+0100"]
    texts += ["20200230", "200101101200+0100", "20010110120000+0100", "20010110120000.12", "2001011012+01:00"]
    return texts


def _corpus_texts() -> list[str]:
    """Every HL7 v2 TS-looking field of the corpus (an 8-digit or longer value starting with a year)."""
    found = set()
    for path in sorted((CORPUS / "fhir-converter" / "hl7v2").glob("*.hl7")):
        for line in path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").split("\n"):
            for part in line.replace("^", "|").replace("~", "|").split("|"):
                if len(part) >= 8 and part[:4].isdigit() and part[:2] in ("19", "20"):
                    found.add(part)
    return sorted(found)


@pytest.fixture(scope="module")
def env():
    return compile_mapping('{"resourceType": "Basic"}').environment


def _answers(env, value: object, zone: str) -> tuple:
    """What the three filters give for one value, with the warnings each leaves."""
    results = []
    for convert in (
        lambda: dates.fhir_date(env, value),
        lambda: dates.fhir_datetime(env, value, zone),
        lambda: dates.fhir_instant(env, value, zone),
    ):
        token = start_budget(Limits())
        try:
            results.append((convert(), [str(w) for w in current_budget().warnings]))
        finally:
            end_budget(token)
    return tuple(results)


def _general(monkeypatch, env, value: object, zone: str) -> tuple:
    with monkeypatch.context() as patched:
        patched.setattr(dates, "_quick_date", lambda text: None)
        patched.setattr(dates, "_quick_datetime", lambda text: None)
        return _answers(env, value, zone)


def test_the_quick_path_answers_as_the_general_code_on_generated_timestamps(env, monkeypatch) -> None:
    texts = _generated()
    quick = sum(dates._quick_datetime(text.strip()) is not None for text in texts)
    assert quick > 1000  # the generator reaches the quick path often, and the general one too
    for n, text in enumerate(texts):
        zone = ZONES[n % len(ZONES)]
        assert _answers(env, text, zone) == _general(monkeypatch, env, text, zone), text


def test_the_quick_path_answers_as_the_general_code_on_the_corpus(env, monkeypatch) -> None:
    texts = _corpus_texts()
    assert len(texts) > 50
    for text in texts:
        for zone in ZONES:
            assert _answers(env, text, zone) == _general(monkeypatch, env, text, zone), text


@pytest.mark.parametrize(
    "raw", ["20240101", "20240101120000+0100", '""', "", "2024\\T\\0101", "20240101^1200", "2024010112+0100"]
)
def test_nodes_and_odd_values_convert_as_their_text_does(env, monkeypatch, raw: str) -> None:
    field = parse_hl7v2(f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||{raw}").PID[3]
    for value in (field, field[1], None, 0, False, str(field)):
        assert _answers(env, value, "UTC") == _general(monkeypatch, env, value, "UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240131", "2024-01-31"),  # a day past 28 goes the general way and still converts
        ("20240228", "2024-02-28"),
        ("198908181126+0215", "1989-08-18T11:26:00+02:15"),
        ("20080825111630-0115", "2008-08-25T11:16:30-01:15"),
        ("20080825236030+0115", None),
        ("20080825111630+1500", None),
    ],
)
def test_quick_answers(env, text: str, expected: str | None) -> None:
    assert _answers(env, text, "UTC")[1][0] == expected
