"""gunicorn settings of the run command (scripts/run passes `-c fhirstudio/gunicorn_conf.py`; its other flags come from
the environment there). Request lines up to gunicorn's maximum reach the studio, so a URL longer than
MAX_URL_BYTES (8,000 by default) gets the studio's 414 in the shape of its part (an OperationOutcome under /fhir/)
rather than gunicorn's plain-text 400 at its default 4,094; only lines over 8,190 bytes still get gunicorn's."""

limit_request_line = 8190  # gunicorn's maximum: 0 would mean unlimited, so unbounded memory per request line
