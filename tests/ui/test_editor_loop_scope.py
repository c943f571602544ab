"""Source-tree insertion relative to the loop in scope (static/src/lib/loop_scope.js), table-driven in Chromium: the
module is imported as it is, and each case is (template text before the cursor, the node's absolute expression from
/source-tree, the source format) → what is inserted and whether the editor says why it is not relative. Then the
whole thing in the editor: a click in the source tree inside `{% for row in msg %}` of the CSV demo."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

CSV_LOOP = '{"entry": [\n{%- for row in msg %}\n  {"birthDate": '
ORU_LOOP = '{%- for obx in msg.all("OBX") %}\n'
NESTED_JSON = "{% for p in msg.patients %}{% for n in p.names %}"

# (text before the cursor, absolute expression, source format, expected insertion, relative to a loop?, a note?)
CASES = [
    # CSV rows: the case
    (CSV_LOOP, "msg[0].birth_date", "csv", "row.birth_date", True, False),
    (CSV_LOOP, 'msg[3]["birth date"]', "csv", 'row["birth date"]', True, False),
    (CSV_LOOP, "msg[0]", "csv", "row", True, False),
    ('{"x": ', "msg[0].birth_date", "csv", "msg[0].birth_date", False, False),  # no loop: absolute, no note
    ("{% for row in msg %}{% endfor %}", "msg[0].mrn", "csv", "msg[0].mrn", False, False),  # the loop is closed
    ("{% for row in msg %}{% else %}", "msg[0].mrn", "csv", "msg[0].mrn", False, False),  # for-else: row is unbound
    ('{% for row in msg | selectattr("mrn") if row.sex %}', "msg[2].mrn", "csv", "row.mrn", True, False),
    ("{% for row in msg[1:] %}", "msg[2].mrn", "ndjson", "row.mrn", True, False),
    ("{%- for row in msg -%}", "msg[0].mrn", "csv", "row.mrn", True, False),
    ('{% for row in msg if row.x != "%}" %}', "msg[0].mrn", "csv", "row.mrn", True, False),  # %} in a string
    ("{# {% for row in msg %} #}", "msg[0].mrn", "csv", "msg[0].mrn", False, False),  # a comment
    ("{% raw %}{% for row in msg %}{% endraw %}", "msg[0].mrn", "csv", "msg[0].mrn", False, False),
    ("{% for row in ms", "msg[0].mrn", "csv", "msg[0].mrn", False, False),  # the cursor is inside the tag
    # JSON arrays, nested loops, {% set %} aliases, shadowing, macros
    (NESTED_JSON, "msg.patients[1].names[0].given[0]", "json", "n.given[0]", True, False),
    (NESTED_JSON, "msg.patients[1].birthDate", "json", "p.birthDate", True, False),
    (NESTED_JSON, "msg.orders[0].id", "json", "msg.orders[0].id", False, True),  # a different container
    ("{% for p in msg.patients %}", 'msg.patients[0]["items"]', "json", 'p["items"]', True, False),
    ("{% set people = msg.patients %}{% for p in people %}", "msg.patients[0].id", "json", "p.id", True, False),
    ("{% for p in msg.patients %}{% set p = 1 %}", "msg.patients[0].id", "json", "msg.patients[0].id", False, True),
    ("{% for x in msg.a %}{% for x in msg.b %}", "msg.a[0].id", "json", "msg.a[0].id", False, True),  # x is msg.b's
    ("{% for x in msg.a %}{% for x in msg.b %}", "msg.b[4].id", "json", "x.id", True, False),
    ("{% for p in msg.patients %}{% macro m(q) %}", "msg.patients[0].id", "json", "msg.patients[0].id", False, False),
    ("{% for e in msg.entry %}", "msg.entry[0].resource.id", "fhir", "e.resource.id", True, False),
    ("{% for k, v in msg.items() %}", "msg.a.b", "json", "msg.a.b", False, True),
    ("{% for i in range(3) %}", "msg[0].mrn", "csv", "msg[0].mrn", False, True),
    # XML repeated elements: .all(name)[i], and the first one reached by name
    (
        '{% for c in msg.component.structuredBody.all("component") %}',
        'msg.component.structuredBody.all("component")[2].section.title',
        "xml",
        "c.section.title",
        True,
        False,
    ),
    (
        '{% for c in msg.component.structuredBody.all("component") %}',
        "msg.component.structuredBody.component.section.code.code",
        "xml",
        "c.section.code.code",
        True,
        False,
    ),
    ('{% for e in section.all("entry") %}', 'msg.all("entry")[1].act', "xml", 'msg.all("entry")[1].act', False, True),
    (
        "{% for child in msg.recordTarget %}",
        "msg.recordTarget.patientRole.id.extension",
        "xml",
        "child.id.extension",
        True,
        False,
    ),
    (
        '{% for c in msg.all("component") %}',
        'msg.all("component")[1].attr("xsi:type")',
        "xml",
        'c.attr("xsi:type")',
        True,
        False,
    ),
    # HL7 v2: segments by msg.all(), repetitions of a field, components, nested, through a {% set %}
    (ORU_LOOP, 'msg.all("OBX")[2][5][1]', "hl7v2", "obx[5][1]", True, False),
    (ORU_LOOP, "msg.OBX[3]", "hl7v2", "obx[3]", True, False),  # the first OBX is msg.OBX in the tree
    (ORU_LOOP, "msg.PID[3][1]", "hl7v2", "msg.PID[3][1]", False, True),
    ("{% for cx in msg.PID[3] %}", "msg.PID[3].rep(2)[1]", "hl7v2", "cx[1]", True, False),
    ("{% for cx in msg.PID[3] %}", "msg.PID[3][4][2]", "hl7v2", "cx[4][2]", True, False),  # one repetition
    ("{% for cx in msg.PID[3] %}", "msg.PID[3].rep(2)", "hl7v2", "cx", True, False),
    ("{% for cx in msg.PID[3] %}", "msg.PID[5][1]", "hl7v2", "msg.PID[5][1]", False, True),
    (ORU_LOOP + "{% for cwe in obx[5] %}", 'msg.all("OBX")[1][5].rep(2)[1]', "hl7v2", "cwe[1]", True, False),
    (ORU_LOOP + "{% for cwe in obx[5] %}", 'msg.all("OBX")[1][3][1]', "hl7v2", "obx[3][1]", True, False),
    ('{%- set dg1s = msg.all("DG1") -%}{%- for dg1 in dg1s %}', 'msg.all("DG1")[1][3]', "hl7v2", "dg1[3]", True, False),
    ("{% set pv1 = msg.PV1 %}{% for xcn in pv1[7] %}", "msg.PV1[7].rep(2)[2]", "hl7v2", "xcn[2]", True, False),
    ("{% for segment in msg.segments %}", "msg.PID[5][1]", "hl7v2", "segment[5][1]", True, False),
    ("{% for field in [pv1[7], pv1[8]] %}", "msg.PV1[7][1]", "hl7v2", "msg.PV1[7][1]", False, True),
]


@pytest.fixture(scope="module")
def scope_module(chromium, live_server):
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/static/src/lib/loop_scope.js")  # any page of the origin; the module is served as is
    page.evaluate("async () => { window.loopScope = await import('/static/src/lib/loop_scope.js'); }")
    yield page
    context.close()


@pytest.mark.parametrize(("before", "expression", "source_format", "inserted", "relative", "note"), CASES)
def test_it_writes_the_node_relative_to_the_loop_in_scope(
    scope_module, before, expression, source_format, inserted, relative, note
) -> None:
    answer = scope_module.evaluate(
        "([before, expression, format]) => window.loopScope.relativeExpression(before, expression, format)",
        [before, expression, source_format],
    )
    assert answer["expression"] == inserted
    assert (answer["loop"] is not None) == relative, answer
    assert (answer["note"] is not None) == note, answer
    if note:
        assert "cannot be written relative to" in answer["note"]


def test_it_inserts_relative_to_the_row_in_the_csv_editor(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/mappings/csv-patients/", ready="body[data-preview-seq]")
    # The cursor inside {% for row in msg %}: at the start of the "deceasedDateTime" line.
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+f")
    page.fill(".template-pane input[name=search]", '"deceasedDateTime"')
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.keyboard.press("Home")

    page.click("#tree-tab-button")
    first_row = page.locator("#source-tree li[data-expression='msg[0]'] > details > summary")
    first_row.wait_for()
    first_row.click()
    page.click("#source-tree button[aria-label='Insert msg[0].birth_date']")
    template = page.inner_text(".template-pane .cm-content")
    assert "{{ row.birth_date }}" in template
    assert "msg[0].birth_date" not in template
    assert "row" in page.inner_text("#tree-note")
    browser.screenshot("editor-insert-relative")

    # Past {% endfor %}: no loop in scope, so the absolute expression goes in.
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+End")
    page.click("#tree-tab-button")
    page.click("#source-tree button[aria-label='Insert msg[0].birth_date']")
    assert "{{ msg[0].birth_date }}" in page.inner_text(".template-pane .cm-content")
