"""What the engine changes in a template as it compiles it: its syntax tree (quiet lookups, the `~` size check) and
the Python Jinja generates from it (lookups on the engine's own source types read inline).

The sandbox makes every `a.b` and `a[b]` a call into the environment (`environment.getattr`/`getitem`), so that it can
refuse internals. For a constant index on an HL7 v2 node (`pid[3]`, `cx[4][1]`: most reads of an HL7 v2 mapping) and a
present key of a dict the template built (`dose.rxa`, `row["obx"]`), the generated code reads the value itself and
calls the environment only for anything else, which keeps every check where it can refuse:
- an HL7 v2 node's `node[n]` with an int `n` is the node's own lookup, never an error, and exactly what the sandbox's
  `getitem` returns for it (it tries `obj[arg]` first);
- a key read from a plain dict is what the sandbox's `getitem`, and the engine's `getattr` for a name that is not a
  dict method, return when the key is there;
- `node.code` (and `node["code"]`) on a C-CDA XML node is `node["code"]`, what the engine's `getattr` returns for a
  name that is not the node's own API, and the sandbox's `getitem` for a text key (about 700 reads per CCD document);
- `res.patient` on an imported snippet is the module's own attribute, what the engine's `getattr` returns for it.
Names starting with `_` always take the environment's path.

Calls the environment would pass straight through are made by the generated code itself (`visit_Call`):
- a method of a source node or a read-only dict method (`node.all("id")`, `msg.group("OBR", "OBX")`,
  `kind.get("code")`: about 80 calls per CCD document), and the studio's own functions by their global name
  (`fhir_id(...)`, `reference(...)`). `environment.call` only called the bound method or function (none takes a
  context, none is marked unsafe, none raises StopIteration) and counted the call for its clock: these calls are
  bounded reads and sums, and the loops and macro calls around them still read the clock;
- a macro given all its arguments by position and taking no `caller`, `varargs` or `kwargs` (`fs_arity`, set as the
  macro is defined): its code is called as `environment.call` called it. The macro's own first lines count the call
  and read the clock every 16th (so a recursion without loops still stops in time), and it returns its text as
  Markup, what `environment.call` made of it.
Anything else, a name shadowed by a template variable included, takes `environment.call` as before, picked by the
generated code with the same arguments.
"""

from __future__ import annotations

import inspect
from functools import partial

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.environment import Template, TemplateModule
from jinja2.runtime import Context, Macro, new_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from .accelerated import is_function
from .filters import GLOBALS
from .hl7v2 import Component, Field, Group, Message, Repetition, Segment, SubComponent
from .limits import current_budget
from .xmlsource import XmlNode, _SectionNode

# Types whose `node[n]`, n an int, never fails and needs no check: the HL7 v2 nodes.
DIRECT_ITEM_TYPES = frozenset({Segment, Field, Repetition, Component, SubComponent})
# `row.obx` on a dict the template built reads the key when no dict attribute has that name (the environment's
# `getattr` does the same; asking Python first raised and caught an AttributeError per read).
DICT_NAMES = frozenset(dir(dict))
# `node.code` on an XML node is `node["code"]` (its child or attribute of that name, or an empty node), what the
# environment's `getattr` returns for any name but the node's own API (`node.all`) and names starting with `_`.
XML_NODE_NAMES = frozenset(name for name in dir(XmlNode) if name[:1] != "_")
NOT_KEYS = DICT_NAMES | XML_NODE_NAMES  # names a dict key or an XML child is not read directly by


def _direct_methods() -> dict[type, frozenset[str]]:
    """The methods called without the environment, by the type of the object they are read from: every public method
    (a plain function of the class: none of these types has an instance dict to shadow one) of the source nodes, and
    a dict's methods that read it."""
    owners = (Message, Group, Segment, Field, Repetition, Component, SubComponent, XmlNode, _SectionNode)
    table = {
        kind: frozenset(
            name for name in dir(kind) if name[:1] != "_" and is_function(inspect.getattr_static(kind, name))
        )
        for kind in owners
    }
    table[dict] = frozenset({"get", "items", "keys", "values"})
    return {kind: names for kind, names in table.items() if names}


DIRECT_METHODS = _direct_methods()
DIRECT_METHOD_NAMES = frozenset().union(*DIRECT_METHODS.values())
# Names the generated code reads as globals of its module (set by `MappingTemplate.from_code`), and the local it
# assigns to hold the value being looked up; Jinja's own names start with `l_`, `t_` or are its runtime's.


def plain_macro(macro: Macro) -> Macro:
    """A macro as defined, told whether a call by position alone may go straight to its code (`fs_arity`, the number
    of arguments such a call gives; -1 for a macro that takes `caller`, `varargs` or `kwargs`)."""
    unusual = macro.caller or macro.explicit_caller or macro.catch_kwargs or macro.catch_varargs
    macro.fs_arity = -1 if unusual else macro._argument_count
    return macro


DIRECT_GLOBALS = {
    "fs_item_types": DIRECT_ITEM_TYPES,
    "fs_markup": Markup,
    "fs_xml_node": XmlNode,
    "fs_module": TemplateModule,
    "fs_methods": DIRECT_METHODS,
    "fs_globals": GLOBALS,
    "fs_partial": partial,
    "fs_macro": Macro,
    "fs_plain_macro": plain_macro,
    "fs_budget": current_budget,
    "fs_new": str.__new__,
}
HELD = "fs_v"
PRINTED = "fs_p"  # the local holding a value being printed
CALLED = "fs_c"  # the local holding a called object, or the object whose method is called


class MappingTemplate(Template):
    """Jinja's Template, whose compiled module also sees `DIRECT_GLOBALS`."""

    @classmethod
    def from_code(cls, environment, code, globals, uptodate=None) -> Template:
        namespace = {"environment": environment, "__file__": code.co_filename, **DIRECT_GLOBALS}
        exec(code, namespace)  # what Template.from_code does, with the names above
        template = cls._from_namespace(environment, namespace, globals)
        template._uptodate = uptodate
        return template

    def new_context(self, vars=None, shared: bool = False, locals=None) -> Context:
        """Jinja's, given this template's globals (a ChainMap) as one plain dict of the same names and values: copying
        the ChainMap read each of its ~40 names through a Python `__getitem__` on every render."""
        maps = getattr(self.globals, "maps", None)
        if maps is None:
            return super().new_context(vars, shared, locals)
        merged: dict = {}
        for names in reversed(maps):  # the first map's value wins, as in the ChainMap
            merged.update(names)
        return new_context(self.environment, self.name, self.blocks, vars, shared, merged, locals)

    def _get_default_module(self, ctx=None) -> TemplateModule:
        """What Jinja's does for `{% import %}`, with its test of the importer's globals against this template's
        (`ctx.globals_keys - self.globals.keys()`, a Python loop over a ChainMap's keys: ~3 % of an HL7 v2 render)
        done by `set.difference` over the ChainMap's own dicts: the same names."""
        maps = getattr(self.globals, "maps", None)
        if ctx is None or maps is None or self.environment.is_async:
            return super()._get_default_module(ctx)
        keys = ctx.globals_keys.difference(*maps)
        if keys:
            return self.make_module({key: ctx.parent[key] for key in keys})
        if self._module is None:
            self._module = self.make_module()
        return self._module


class MappingCodeGenerator(CodeGenerator):
    """Jinja's code generator, plus
    - quiet lookups: a Getattr or Getitem node that `GuardedLookups` marked `quiet` calls `environment.quiet_attr`/
      `quiet_item` instead of `getattr`/`getitem`: the same one call, so it costs nothing more, and nothing a template
      (or the editor's completion) could see (Jinja refuses new node types);
    - direct reads (see the module's docstring): `(fs_v[3] if type(fs_v := pid) in fs_item_types else
      environment.getitem(fs_v, 3))`, evaluating `pid` once;
    - printed macro results: `{{ res.patient(pid) }}` and `{{ x | tojson }}` give Markup, which `finalize` returns as
      it is and `str()` then copied (most printed values of the demos). The generated code yields such a value
      itself and calls `str(environment.finalize(value))` for anything else."""

    def _prints_plainly(self, frame: Frame, finalize) -> bool:
        """Whether output is `str(environment.finalize(value))`: no autoescape, the environment's own finalize."""
        return not frame.eval_ctx.volatile and not frame.eval_ctx.autoescape and finalize.src == "environment.finalize("

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize) -> None:
        if not self._prints_plainly(frame, finalize):
            super()._output_child_pre(node, frame, finalize)
            return
        self.write(f"({PRINTED} if type({PRINTED} := ")

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize) -> None:
        if not self._prints_plainly(frame, finalize):
            super()._output_child_post(node, frame, finalize)
            return
        self.write(f") is fs_markup else str(environment.finalize({PRINTED})))")

    @optimizeconst
    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:  # noqa: N802
        """`node.all("id")` and `fhir_id(...)` without the environment (see the module's docstring): the generated code
        picks the callable, `obj.method` or the function, and calls it once with the arguments; for anything else it
        picks `environment.call` with what Jinja passes it, so the arguments are written once either way."""
        callee = node.node
        plain = not (forward_caller or node.kwargs or node.dyn_args or node.dyn_kwargs or self.environment.is_async)
        function = GLOBALS.get(callee.name) if plain and isinstance(callee, nodes.Name) else None
        if plain and isinstance(callee, nodes.Getattr) and callee.attr in DIRECT_METHOD_NAMES:
            lookup = "quiet_attr" if getattr(callee, "quiet", False) else "getattr"
            self.write(f"({CALLED}.{callee.attr} if {callee.attr!r} in fs_methods.get(type({CALLED} := ")
            self.visit(callee.node, frame)
            self.write(f"), ()) else fs_partial(environment.call, context, environment.{lookup}({CALLED}, ")
            self.write(f"{callee.attr!r}){self._context_kwargs(frame)}))(")
        elif function is not None and callee.ctx == "load" and function in self.environment.plain_calls:
            direct = f"environment.bound_calls[{callee.name!r}]"  # takes the environment first
            self.write(f"({direct if function in self.environment.environment_calls else CALLED} if ({CALLED} := ")
            self.visit(callee, frame)
            self.write(f") is fs_globals[{callee.name!r}] else fs_partial(environment.call, context, {CALLED}")
            self.write(f"{self._context_kwargs(frame)}))(")
        elif plain:  # most likely a macro: straight to its code when given all its arguments by position
            self.write(f"({CALLED}._func if type({CALLED} := ")
            self.visit(callee, frame)
            self.write(f") is fs_macro and {CALLED}.fs_arity == {len(node.args)} else fs_partial(environment.call, ")
            self.write(f"context, {CALLED}{self._context_kwargs(frame)}))(")
        else:
            CodeGenerator.visit_Call.__wrapped__(self, node, frame, forward_caller)
            return
        for index, argument in enumerate(node.args):
            self.write(", " if index else "")
            self.visit(argument, frame)
        self.write(")")

    def push_parameter_definitions(self, frame: Frame) -> None:
        """Jinja's, and the first lines of every macro: the call is counted, and the clock read every 16th, as
        `environment.call` does for other calls (a recursion of macro calls without loops stops at the time limit)."""
        super().push_parameter_definitions(frame)
        self.writeline("if (fs_b := fs_budget()) is not None:")
        self.indent()
        self.writeline("fs_b.calls += 1")
        self.writeline("if fs_b.calls & 15 == 0:")
        self.indent()
        self.writeline("fs_b.check_time()")
        self.outdent(2)

    def return_buffer_contents(self, frame: Frame, force_unescaped: bool = False) -> None:
        """A macro returns its text as Markup, what `environment.call` made of it (so that printing it skips
        `finalize`), now that calls by position reach its code directly; anything else returns as in Jinja."""
        if force_unescaped:  # only a macro's body forces it
            self.writeline(f"return fs_new(fs_markup, concat({frame.buffer}))")
        else:
            super().return_buffer_contents(frame, force_unescaped)

    def macro_def(self, macro_ref, frame: Frame) -> None:
        self.write("fs_plain_macro(")
        super().macro_def(macro_ref, frame)
        self.write(")")

    @staticmethod
    def _context_kwargs(frame: Frame) -> str:
        """What Jinja's `visit_Call` passes `environment.call` besides the arguments in a loop or a block."""
        return (", _loop_vars=_loop_vars" if frame.loop_frame else "") + (
            ", _block_vars=_block_vars" if frame.block_frame else ""
        )

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:  # noqa: N802 — Jinja's visitor naming
        self._lookup(
            node, frame, name=repr(node.attr), method="quiet_attr" if getattr(node, "quiet", False) else "getattr"
        )

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:  # noqa: N802
        if isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)  # Python slicing, not a lookup
            return
        self._lookup(node, frame, name=None, method="quiet_item" if getattr(node, "quiet", False) else "getitem")

    @optimizeconst
    def _lookup(self, node: nodes.Getattr | nodes.Getitem, frame: Frame, *, name: str | None, method: str) -> None:
        key = node.arg.value if name is None and isinstance(node.arg, nodes.Const) else None
        module = False  # whether a snippet's attribute is read directly too
        if name is not None and node.attr[:1] != "_" and node.attr not in NOT_KEYS:
            test = f"type({HELD} := {{}}) is dict and {name} in {HELD} or type({HELD}) is fs_xml_node"
            module = True
        elif name is not None and node.attr[:1] != "_" and node.attr not in DICT_NAMES:
            test = f"type({HELD} := {{}}) is dict and {name} in {HELD}"
        elif type(key) is int:
            test, name = f"type({HELD} := {{}}) in fs_item_types", repr(key)
        elif type(key) is str and key[:1] != "_":
            test = f"type({HELD} := {{}}) is dict and {key!r} in {HELD} or type({HELD}) is fs_xml_node"
            name = repr(key)
        else:
            self.write(f"environment.{method}(")
            self.visit(node.node, frame)
            self.write(", ")
            self.visit(node.arg, frame) if name is None else self.write(name)
            self.write(")")
            return
        fallback = f"environment.{method}({HELD}, {name})"
        if module:  # a snippet's macro (`res.patient`): what getattr gives, from the module's own attributes
            fallback = (
                f"fs_m[{name}] if type({HELD}) is fs_module and {name} in (fs_m := {HELD}.__dict__) else {fallback}"
            )
        before, after = test.split("{}")
        self.write(f"({HELD}[{name}] if {before}")
        self.visit(node.node, frame)
        self.write(f"{after} else {fallback})")


class ConcatGuard(NodeTransformer):
    """`a ~ b` becomes `[a, b] | concat_guard`, which checks the joined size before building it."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:  # noqa: N802 — NodeTransformer's naming
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, "concat_guard", [], [], None, None, lineno=node.lineno)


def _quiet(node: nodes.Expr) -> nodes.Expr:
    """Mark a lookup chain (`row.middle`, `msg.patient["birth date"]`) quiet, each step of it."""
    current = node
    while isinstance(current, (nodes.Getattr, nodes.Getitem)) and current.ctx == "load":
        if isinstance(current, nodes.Getitem) and isinstance(current.arg, nodes.Slice):
            break  # `items[1:]` is Python slicing, not a lookup
        current.quiet = True
        current = current.node
    return node


def _quiet_test(node: nodes.Expr) -> nodes.Expr:
    """The condition of an `if`: every operand of `and`, `or` and `not` is tested for truth."""
    if isinstance(node, (nodes.And, nodes.Or)):
        node.left, node.right = _quiet_test(node.left), _quiet_test(node.right)
        return node
    if isinstance(node, nodes.Not):
        node.node = _quiet_test(node.node)
        return node
    return _quiet(node)


class GuardedLookups(NodeTransformer):
    """Lookups the template tests, so whose absence it expects, become quiet (see engine/missing.py): the condition
    of `{% if %}` and `x if … else y`, the operand of a test (`is defined`), of `| default`, the left of `or`/`and`."""

    def visit_If(self, node: nodes.If) -> nodes.If:  # noqa: N802 — NodeTransformer's naming
        self.generic_visit(node)
        node.test = _quiet_test(node.test)
        return node

    def visit_CondExpr(self, node: nodes.CondExpr) -> nodes.CondExpr:  # noqa: N802
        self.generic_visit(node)
        node.test = _quiet_test(node.test)
        return node

    def visit_Test(self, node: nodes.Test) -> nodes.Test:  # noqa: N802
        self.generic_visit(node)
        node.node = _quiet(node.node)
        return node

    def visit_Filter(self, node: nodes.Filter) -> nodes.Filter:  # noqa: N802
        self.generic_visit(node)
        if node.name in ("default", "d") and node.node is not None:
            node.node = _quiet(node.node)
        return node

    def _left_tested(self, node: nodes.And | nodes.Or) -> nodes.And | nodes.Or:
        self.generic_visit(node)
        node.left = _quiet(node.left)
        return node

    visit_And = visit_Or = _left_tested  # noqa: N815
