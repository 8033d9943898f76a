"""The sandboxed Jinja2 environments every template runs in, one per locale and kind of part.

On top of ``ImmutableSandboxedEnvironment`` (no private attributes, no mutation) we remove every
global (``range``, ``cycler``, ``lipsum``…), keep only the Jinja filters that can neither blow up
memory nor undo escaping, cap ``*`` and ``**``, refuse ``%`` on text and block the padding
methods of ``str``. Calls, filters, loops, ``+``, ``*``, ``~`` and the output are counted
against the render's budget (``budget.py``). Undefined values fail loudly with messages an
admin can act on; ``None`` prints as nothing. HTML parts autoescape, subjects and text parts do
not. Compiled templates are cached by source text: rendering sits on the hot path of every
inbound mail.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing
from markupsafe import Markup, escape

from postdesk.templates import budget
from postdesk.templates.filters import filters_for

JINJA_FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
    "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr", "sort",
    "string", "striptags", "sum", "title", "trim", "truncate", "unique", "upper", "urlencode",
    "urlize", "wordcount", "wordwrap",
})
BLOCKED_ATTRIBUTES = frozenset({"format", "format_map", "center", "ljust", "rjust", "zfill",
                                "expandtabs", "translate", "maketrans", "to_bytes"})
MAX_ITEMS = 10_000
MAX_POWER_BITS = 4096
_DICT_ATTRIBUTES = frozenset(dir(dict))  # what x.name finds on a dict before its items


class FieldUndefined(StrictUndefined):
    """StrictUndefined whose message names the missing field and what exists beside it."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name, obj = self._undefined_name, self._undefined_obj
        if self._undefined_hint:
            return self._undefined_hint
        if obj is missing:
            return f"uses {name!r}, which is not defined"
        if isinstance(obj, Mapping):
            fields = ", ".join(sorted(map(str, obj)))
            return f"uses field {name!r}, which does not exist here (fields: {fields})"
        return f"uses {name!r} on a {type(obj).__name__} value, which has no such field"


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the operators that can exhaust memory or time kept in bounds, and the
    calls and operators counted against the render's budget (``budget.py``)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    concat = staticmethod(budget.concat)  # the output and every buffered block, counted

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return attr not in BLOCKED_ATTRIBUTES and super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``ticket.ref`` on a plain dict: its item, as the sandbox gives once Python's
        ``getattr`` has failed — without raising and catching that ``AttributeError`` for every
        field of every render. A name that is also an attribute of ``dict`` (``items``…) and
        any other object go through the sandbox's checks as before."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("formatting text with '%' is not allowed; join text with '~'")
        if operator == "*" and _repeat_length(left, right) > MAX_ITEMS:
            raise SecurityError(f"'*' would build more than {MAX_ITEMS} characters or items")
        if operator == "**" and _power_bits(left, right) > MAX_POWER_BITS:
            raise SecurityError("'**' would build a number too large to show")
        if operator == "*" and _product_bits(left, right) > MAX_POWER_BITS:
            raise SecurityError("'*' would build a number too large to show")
        budget.check(budget.binop_size(operator, left, right))
        return budget.built(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A call from a template (function, method, macro, ``loop()``): one step; the size of
        ``replace`` and ``join`` predicted; a recursive loop's turns counted; the result's
        length counted."""
        budget.step()
        if isinstance(__obj, LoopContext) and args:
            args = (budget.turns(args[0]), *args[1:])
        args, kwargs = budget.call_method(__obj, args, kwargs)
        return budget.built(super().call(__context, __obj, *args, **kwargs))


def _repeat_length(left: Any, right: Any) -> int:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            return len(seq) * times
    return 0


def _product_bits(left: Any, right: Any) -> int:
    if isinstance(left, int) and isinstance(right, int):
        return abs(left).bit_length() + abs(right).bit_length()
    return 0


def _power_bits(left: Any, right: Any) -> float:
    if isinstance(left, int) and isinstance(right, int | float):
        return max(abs(left).bit_length(), 1) * abs(right)
    return 0


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def nl2br(value: Any) -> Markup:
    """HTML only: escape the text and keep its line breaks as ``<br>``."""
    lines = ("" if value is None else str(value)).splitlines()
    return Markup("<br>\n").join(escape(line) for line in lines)


def environment(locale: str, part: str) -> TemplateSandbox:
    """The environment for one locale and part: HTML parts autoescape and know ``nl2br``."""
    return _environment(locale, part == "html")


@lru_cache(maxsize=None)
def _environment(locale: str, html: bool) -> TemplateSandbox:
    env = TemplateSandbox(undefined=FieldUndefined, autoescape=html, trim_blocks=True,
                          lstrip_blocks=True, finalize=_finalize, cache_size=0)
    env.globals.clear()
    chosen = {name: env.filters[name] for name in JINJA_FILTERS} | filters_for(locale)
    if html:
        chosen["nl2br"] = nl2br
    env.filters = budget.counted_filters(chosen)
    return env


@lru_cache(maxsize=512)
def compile_template(source: str, locale: str, part: str) -> Template:
    """Compile once per source text, its loops and ``~`` counted against the budget of the
    render; raises ``TemplateSyntaxError`` as Jinja does."""
    env = environment(locale, part)
    tree = budget.budgeted(env.parse(source))
    tree.set_environment(env)
    return env.from_string(tree)


def explain(exc: BaseException) -> tuple[int | None, str]:
    """The template line (when known) and a sentence for an error raised by Jinja."""
    line = getattr(exc, "lineno", None) or _template_line(exc)
    if isinstance(exc, TemplateSyntaxError):
        return line, f"syntax error: {exc.message}"
    if isinstance(exc, SecurityError):
        return line, f"is refused by the sandbox: {exc}"
    if isinstance(exc, budget.BudgetExceeded):
        return line, f"{exc}; {exc.advice}"
    if isinstance(exc, UndefinedError):
        return line, str(exc)
    return line, f"fails when rendered: {type(exc).__name__}: {exc}"


def _template_line(exc: BaseException) -> int | None:
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [frame.lineno for frame in frames if frame.filename == "<template>"]
    return lines[-1] if lines else None
