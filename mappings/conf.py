"""The studio's settings turned into engine values (the engine itself reads no settings)."""

from django.conf import settings

from mappings.engine import Limits


def engine_limits() -> Limits:
    conf = settings.FHIR_STUDIO
    return Limits(
        max_input_bytes=conf["MAX_INPUT_BYTES"],
        render_timeout_ms=conf["RENDER_TIMEOUT_MS"],
        max_loop_iterations=conf["MAX_LOOP_ITERATIONS"],
        max_output_bytes=conf["MAX_OUTPUT_BYTES"],
        max_include_depth=conf["MAX_INCLUDE_DEPTH"],
    )
