"""Settings for bench/facade.py's server: the studio's own settings, plus a static JSON view beside the facade, so
the facade's throughput can be read against what the same Django stack serves with no work at all."""

from fhirstudio.settings import *  # noqa: F403 — the same stack as production

ROOT_URLCONF = "bench.urls"
