"""Compiled snippet code is shared between compilations, so a live preview recompiles only the text that changed —
without weakening any compile-time check."""

import pytest

from mappings.engine import MappingError, compile_mapping, run_mapping
from mappings.engine.environment import MappingEnvironment

SNIPPETS = {"snippets/common/names.j2": '{% macro name(text) %}{"text": {{ text | tojson }}}{% endmacro %}'}


@pytest.fixture
def compiled_texts(monkeypatch) -> list[str]:
    """The names of the templates Jinja really compiled (a cache hit skips it)."""
    seen: list[str] = []
    original = MappingEnvironment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        seen.append(name)
        return original(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(MappingEnvironment, "compile", counting)
    return seen


def test_it_compiles_an_unchanged_snippet_once_across_root_texts(compiled_texts) -> None:
    for family in ("Smith", "Jones", "Brown"):
        root = '{% import "snippets/common/names.j2" as n %}{"resourceType": "Patient", "name": [' + (
            f'{{{{ n.name("{family}-cache-test") }}}}]}}'
        )
        result = run_mapping(compile_mapping(root, snippets=SNIPPETS), "{}", source_format="json")
        assert result.output["name"] == [{"text": f"{family}-cache-test"}]
    assert compiled_texts.count("template.j2") == 3
    assert compiled_texts.count("snippets/common/names.j2") <= 1  # at most once: an earlier test may have cached it


def test_it_recompiles_a_snippet_whose_text_changed(compiled_texts) -> None:
    root = '{% import "snippets/x.j2" as x %}{"resourceType": "Basic", "id": {{ x.id() | tojson }}}'
    for value in ("one-cache-test", "two-cache-test"):
        snippets = {"snippets/x.j2": f"{{% macro id() %}}{value}{{% endmacro %}}"}
        result = run_mapping(compile_mapping(root, snippets=snippets), "{}", source_format="json", validate=False)
        assert result.output["id"] == value
    assert compiled_texts.count("snippets/x.j2") == 2


def test_it_still_finds_an_import_cycle_when_the_code_comes_from_the_cache() -> None:
    snippets = {
        "snippets/p.j2": '{% import "snippets/q.j2" as q %}',
        "snippets/q.j2": '{% import "snippets/p.j2" as p %}',
    }
    for _ in range(2):
        with pytest.raises(MappingError) as caught:
            compile_mapping('{% import "snippets/p.j2" as p %}{}', snippets=snippets)
        assert caught.value.code == "FS-TPL-003"


def test_one_call_empties_every_cache_the_engine_keeps() -> None:
    from mappings.engine import clear_caches
    from mappings.engine.environment import COMPILED_CODE

    compile_mapping('{"resourceType": "Basic", "code": {"text": "cached"}}')
    assert COMPILED_CODE.items
    clear_caches()
    assert not COMPILED_CODE.items
