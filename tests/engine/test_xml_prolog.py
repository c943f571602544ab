"""The DOCTYPE gate's prolog scan (mappings/engine/xmlsource.py, `_prolog_end`) skips whitespace, processing
instructions and comments with `find`; it must end where the regex it replaced ended, on bytes and on text."""

import random
import re

from mappings.engine import xmlsource

OLD_BYTES = re.compile(rb"(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
OLD_TEXT = re.compile(r"(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
PIECES = ["<?", "?>", "<!--", "-->", "-", "?", "<", ">", "!", " ", "\n", "\t", "\r", "x", "<!", "<!DOCTYPE", "--", "é"]


def test_it_ends_the_prolog_where_the_old_regex_did_on_generated_prologs() -> None:
    rng = random.Random(31)
    for _ in range(30_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randrange(12)))
        start = rng.choice([0, 0, 1]) if text else 0
        found = xmlsource._prolog_end(text, start, xmlsource._SPACES_TEXT, ("<?", "?>", "<!--", "-->"))
        assert found == OLD_TEXT.match(text, start).end(), (text, start)
        raw = text.encode()
        found = xmlsource._prolog_end(raw, start, xmlsource._SPACES_BYTES, (b"<?", b"?>", b"<!--", b"-->"))
        assert found == OLD_BYTES.match(raw, start).end(), (raw, start)


def test_a_doctype_after_a_long_commented_prolog_is_still_found() -> None:
    prolog = '<?xml version="1.0"?>\n<?xml-stylesheet href="CDA.xsl"?>\n<!--' + "header " * 500 + "-->\n<!-- -->"
    assert xmlsource._declares_dtd_text(prolog + "<!DOCTYPE x><x/>")
    assert xmlsource._declares_dtd_bytes((prolog + "\n<!DOCTYPE x><x/>").encode())
    assert not xmlsource._declares_dtd_bytes((prolog + "<x><![CDATA[<!DOCTYPE html>]]></x>").encode())
    assert not xmlsource._declares_dtd_text("<!-- unclosed <!DOCTYPE x>")
