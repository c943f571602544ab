"""fhir_id remembers its ids for one run: the ADT^A01 demo names each clinician twice (the Practitioner and the
reference to it) and hashed each key twice. The ids stay the ones the formula gives, and nothing outlives the run."""

import hashlib
import random
import string

from mappings.engine.filters import values
from mappings.engine.filters.values import fhir_id
from mappings.engine.limits import Limits, current_budget, end_budget, start_budget


def _formula(*texts: str) -> str:
    """The id of issue 14's sixth slice, written out: the first 128 bits of SHA-256 in a version 5 UUID's layout."""
    h = hashlib.sha256("|".join(texts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def test_it_hashes_a_key_once_per_run(monkeypatch) -> None:
    hashed, sha256 = [], hashlib.sha256

    def counting_sha256(data: bytes):
        hashed.append(data)
        return sha256(data)

    monkeypatch.setattr(values.hashlib, "sha256", counting_sha256)
    token = start_budget(Limits())
    try:
        first = fhir_id("Practitioner", "1122334", "Alaz", "Mohammed")
        again = fhir_id("Practitioner", " 1122334 ", "Alaz", "Mohammed")  # the same key once its parts are stripped
        other = fhir_id("Practitioner", "C006", "Woolfson", "Kathleen")
        assert current_budget().ids == {
            "Practitioner|1122334|Alaz|Mohammed": first,
            "Practitioner|C006|Woolfson|Kathleen": other,
        }
    finally:
        end_budget(token)
    assert first == again != other
    assert hashed == [b"Practitioner|1122334|Alaz|Mohammed", b"Practitioner|C006|Woolfson|Kathleen"]
    token = start_budget(Limits())  # a new run starts with nothing remembered
    try:
        assert current_budget().ids == {}
        assert fhir_id("Practitioner", "1122334", "Alaz", "Mohammed") == first
    finally:
        end_budget(token)
    assert len(hashed) == 3


def test_it_gives_the_formulas_ids_in_a_run_and_outside_one() -> None:
    rng = random.Random(14)
    keys = [tuple("".join(rng.choices(string.printable, k=rng.randint(1, 12))) for _ in range(3)) for _ in range(400)]
    outside = [fhir_id(*key) for key in keys]
    token = start_budget(Limits())
    try:
        inside = [fhir_id(*key) for key in keys + keys]
    finally:
        end_budget(token)
    expected = [_formula(*(part.strip() for part in key)) for key in keys]
    assert outside == expected
    assert inside == expected + expected
    assert {uid[19] for uid in expected} == set("89ab")  # every variant digit met
