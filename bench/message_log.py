"""What the message log costs a conversion (issue 15): per message, reading its business keys (MSH-10, PID-3) and
writing its log row in a batch chunk's one write (500 rows, the default chunk: a COPY on PostgreSQL), against
run_mapping on the same ADT^A01 (the corpus ADT-A01-01.hl7, as bench/batch.py sends it). Facade requests add a
tuple to a buffer instead (tests/api/test_message_log.py checks they issue no query of their own).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench .venv/bin/python bench/message_log.py

Run by hand, never in CI; it leaves no log rows behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.batch import adt_version, corpus_message  # noqa: E402
from mappings.compiling import compile_version  # noqa: E402
from mappings.conf import engine_limits  # noqa: E402
from mappings.engine import run_mapping  # noqa: E402
from mappings.message_log import buffer, business_keys, message_row  # noqa: E402
from mappings.models import MessageChannel  # noqa: E402

CHUNK = 500
ROUNDS = 10


def messages(count: int) -> list[str]:
    lines = corpus_message()
    msh, body = lines[0].split(b"|"), b"\r".join(lines[1:])
    found = []
    for n in range(count):
        msh[9] = b"MSG%07d" % n
        found.append((b"|".join(msh) + b"\r" + body.replace(b"PATID1234", b"MRN%07d" % n)).decode())
    return found


def main() -> None:
    call_command("migrate", verbosity=0)
    version = adt_version()
    compiled, limits = compile_version(version), engine_limits()
    payloads = messages(CHUNK)
    results = [run_mapping(compiled, payload, source_format="hl7v2", limits=limits) for payload in payloads]
    started = time.perf_counter()
    for payload in payloads:
        run_mapping(compiled, payload, source_format="hl7v2", limits=limits)
    engine_ms = (time.perf_counter() - started) * 1000 / CHUNK
    started = time.perf_counter()
    for _ in range(ROUNDS):
        for payload, result in zip(payloads, results, strict=True):
            business_keys(payload, "hl7v2", result.output)
    keys_us = (time.perf_counter() - started) * 1e6 / (CHUNK * ROUNDS)
    assert business_keys(payloads[7], "hl7v2", None) == ("MSG0000007", "MRN0000007")
    rows = [
        message_row(
            MessageChannel.BATCH,
            mapping_slug=version.mapping.slug,
            version_number=version.number,
            source_format="hl7v2",
            payload=payload,
            output=result.output,
            errors=result.errors,
            batch_id=1,
            record_key=f"MSG{n:07d}",
        )
        for n, (payload, result) in enumerate(zip(payloads, results, strict=True))
    ]
    writes = []
    for _ in range(ROUNDS):
        with transaction.atomic():
            started = time.perf_counter()
            buffer.write(rows)
            writes.append(time.perf_counter() - started)
            transaction.set_rollback(True)  # measured, not kept
    write_us = min(writes) * 1e6 / CHUNK
    median_us = sorted(writes)[len(writes) // 2] * 1e6 / CHUNK
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"load: {load}")
    print(f"run_mapping (validated): {engine_ms:.3f} ms a message")
    print(f"business keys: {keys_us:.1f} µs a message ({keys_us / 10 / engine_ms:.2f} % of run_mapping)")
    print(
        f"log row in a {CHUNK}-row write: best {write_us:.1f} µs, median {median_us:.1f} µs a message "
        f"({median_us / 10 / engine_ms:.2f} % of run_mapping)"
    )


if __name__ == "__main__":
    main()
