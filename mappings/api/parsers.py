"""Request parsers for the studio API (a module of its own: settings name it, so it must not import views)."""

import codecs

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from mappings.engine.formats.decimals import FhirDecimal


class StudioJSONParser(JSONParser):
    """DRF's JSON parser, plus: fractions are read as FhirDecimals, so a FHIR value sent as `0.70` (an expected
    output, a resource to validate) keeps its digits; a body nested deeper than Python's recursion limit is a 400,
    not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        parse_constant = json.strict_constant if self.strict else None
        try:
            return json.load(codecs.getreader(encoding)(stream), parse_constant=parse_constant, parse_float=FhirDecimal)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
