"""Request parsers for the studio API (a module of its own: settings name it, so it must not import views)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StudioJSONParser(JSONParser):
    """DRF's JSON parser, plus: a body nested deeper than Python's recursion limit is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
