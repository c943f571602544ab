"""The studio API's JSON renderer: DRF's, written with orjson so FHIR output keeps its decimals' digits (`0.70` is
not `0.7`: the stdlib encoder writes every float subclass as a float). Whatever orjson does not write itself (dates,
times, Decimal, lazy strings, UUIDs…) goes through DRF's own encoder, so every other answer reads as before."""

from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from mappings.engine.formats.decimals import FhirDecimal

OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_drf = JSONEncoder()


def _default(value: object) -> object:
    if isinstance(value, FhirDecimal):
        return orjson.Fragment(value.text)
    return _drf.default(value)


class StudioJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        indent = self.get_indent(accepted_media_type, renderer_context or {})
        if indent:  # the browsable API and `; indent=` asks: the stdlib's layout, rare
            return super().render(data, accepted_media_type, renderer_context)
        try:
            return orjson.dumps(data, default=_default, option=OPTIONS)
        except orjson.JSONEncodeError:  # integers past 64 bits, lone surrogates: what the stdlib still writes
            return super().render(data, accepted_media_type, renderer_context)
