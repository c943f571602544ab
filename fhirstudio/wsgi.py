"""The WSGI application. gunicorn (scripts/run) imports this module in each worker after forking (no --preload), so
what runs here runs once per worker, after Django and every URL's views are loaded."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")
application = get_wsgi_application()

# Load the FHIR definitions now rather than on the first request that validates, then move everything alive into
# the collector's permanent generation: the collections a request sets off no longer walk Django and ~1 M objects
# of definitions (1.3 ms a render request before; bench/README.md). Here rather than in a gunicorn post_fork hook:
# any WSGI server runs it, in the process that serves, after the app has loaded (a hook would need a config file,
# and with --preload this runs before the fork, which is as good: the children inherit the frozen heap).
import gc  # noqa: E402

from mappings.caches import freeze_long_lived  # noqa: E402 — needs the apps loaded by get_wsgi_application()

freeze_long_lived()
# A render request allocates enough to set off two young collections (700 allocations each) and walk its Jinja
# contexts again and again; every 10,000 does the same work about 30 times less often: the collector's share of a
# render 0.34–0.44 → 0.16 ms, of a facade read 0.01 ms (bench/README.md). What waits for it is a request's garbage.
gc.set_threshold(10_000, 10, 10)
