"""The work one render of an admin template may do, counted by the sandbox, so that no template
hangs a worker or fills its memory, whatever values it is given.

A render runs inside ``spending(Budget())``. It counts **steps** (each loop turn, each call of
a function, method, macro or ``loop()``, each filter), the **characters built** (every text or
list a filter, a call, ``+``, ``*`` or ``~`` makes, and the output, nested blocks included) and
keeps a **deadline** on the wall clock, looked at on every step, for the few operations that are
slow without building anything. What would build a large result (``replace``, ``join``, ``+``,
``~``, ``sum``) is predicted and refused before it runs, and a filter is charged before it runs
for the items or text it is given. The environment calls the hooks here (``step``, ``check``,
``built``, ``turns``, ``concat``); the compiled templates reach the loops and ``~`` through two
filters whose names no template can write (``budgeted`` rewrites the tree).
Outside ``spending`` (the packaged defaults) nothing is counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from jinja2 import nodes, pass_context, pass_eval_context
from jinja2.filters import make_attrgetter
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import SecurityError
from jinja2.visitor import NodeTransformer

MAX_STEPS = 25_000
MAX_CHARS = 1_000_000
CHARS_PER_VALUE_CHAR = 8  # a template may show its values several times, escaped
MAX_SECONDS = 1.0
LOOPS = "loops inside loops multiply: keep them simple"
TEXT = "show less text, or build it without repeating it"
TEXT_CHARS_PER_STEP = 100
SLOW_CHARS_PER_STEP = 10  # about 2 µs a character: a step's worth every 10
SLOW_FILTERS = frozenset({"urlize", "wordwrap"})
CONSTANT_FILTERS = frozenset({"count", "d", "default", "first", "last", "length"})
ITEM_FILTERS = frozenset({"dictsort", "groupby", "list", "map", "max", "min", "reject",
                          "rejectattr", "select", "selectattr", "sort", "sum", "unique"})
TURNS = "budget turns"  # a space: no template can name these filters
CONCAT = "budget concat"

_current: ContextVar[Budget | None] = ContextVar("postdesk_template_budget", default=None)


class BudgetExceeded(Exception):
    """A render spent its budget; ``what`` says which part of it, in an admin's words."""

    def __init__(self, what: str, advice: str) -> None:
        self.what, self.advice = what, advice
        super().__init__(f"goes over the rendering budget ({what})")


@dataclass
class Budget:
    """What one render may still do. ``clock`` is injectable; the deadline starts at creation
    unless ``deadline`` (an instant of ``clock``) is given, to share one among several renders."""

    steps: int = MAX_STEPS
    chars: int = MAX_CHARS
    seconds: float = MAX_SECONDS
    clock: Callable[[], float] = time.monotonic
    deadline: float | None = None
    spent_steps: int = 0
    spent_chars: int = 0
    exceeded: tuple[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.deadline is None:
            self.deadline = self.clock() + self.seconds

    @classmethod
    def for_values(cls, values: Any, **limits: Any) -> Budget:
        """The budget of a render of ``values``: the characters it may build grow with the
        text it is given (a long customer mail may be shown whole, in both bodies)."""
        chars = limits.pop("chars", MAX_CHARS)
        return cls(chars=chars + CHARS_PER_VALUE_CHAR * text_size(values), **limits)

    def step(self, steps: int = 1) -> None:
        self.spent_steps += steps
        if self.spent_steps > self.steps:
            self._fail(f"more than {self.steps:,} loop turns and calls", LOOPS)
        if self.clock() > self.deadline:
            self._fail(f"more than {self.seconds:g} s of work", LOOPS)
        if self.exceeded:
            raise BudgetExceeded(*self.exceeded)

    def check(self, chars: int) -> None:
        """Refuse, before it is built, a result of ``chars`` that would not fit."""
        if self.spent_chars + chars > self.chars:
            self._fail(f"more than {self.chars:,} characters built", TEXT)

    def spend(self, chars: int) -> None:
        self.spent_chars += max(chars, 0)
        if self.spent_chars > self.chars:
            self._fail(f"more than {self.chars:,} characters built", TEXT)
        if self.exceeded:
            raise BudgetExceeded(*self.exceeded)

    def _fail(self, what: str, advice: str) -> None:
        self.exceeded = self.exceeded or (what, advice)  # later steps fail the same way
        raise BudgetExceeded(*self.exceeded)


@contextmanager
def spending(budget: Budget) -> Iterator[Budget]:
    """Count the renders of this block (this thread or task only) against ``budget``."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def step(steps: int = 1) -> None:
    if (budget := _current.get()) is not None:
        budget.step(steps)


def spend(chars: int) -> None:
    if (budget := _current.get()) is not None:
        budget.spend(chars)


def check(chars: int) -> None:
    if (budget := _current.get()) is not None:
        budget.check(chars)


def text_size(value: Any) -> int:
    """The characters of text in plain values (dicts, lists, texts)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(text_size(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(text_size(item) for item in value)
    return 0


def built(value: Any) -> Any:
    """Count a result that is text or a collection by its length; return it unchanged."""
    if isinstance(value, str | bytes | list | tuple | dict) and _current.get() is not None:
        spend(len(value))
    return value


def turns(iterable: Iterable[Any]) -> Iterable[Any]:
    """``iterable``, one step per item taken (a loop's turns)."""
    if _current.get() is None:
        return iterable
    return _counted(iterable)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        step()
        yield item


def concat(pieces: Iterable[str]) -> str:
    """The environment's ``concat`` (the output and every buffered block): each piece is
    counted as it comes, so an endless output stops early."""
    if _current.get() is None:
        return "".join(pieces)
    kept = []
    for piece in pieces:
        spend(len(piece))
        kept.append(piece)
    return "".join(kept)


# Predictions of what would be built, refused before it is.

def replaced_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    """The length of ``text.replace(old, new, count)``, without building it."""
    try:
        found = len(text) + 1 if len(old) == 0 else text.count(old)
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        return len(text) + found * (len(new) - len(old))
    except TypeError:
        return 0  # the call itself will fail and say why


def joined_size(separator: Any, items: list[Any]) -> int:
    size = len(separator) * max(len(items) - 1, 0)
    return size + sum(len(item) if isinstance(item, str | bytes) else len(str(item))
                      for item in items)


def call_method(method: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Before a method call: predict the size of ``str``/``bytes`` ``replace`` and ``join``
    (the two that grow beyond their inputs); returns the arguments to call with."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if not isinstance(owner, str | bytes) or _current.get() is None:
        return args, kwargs
    if name == "replace" and len(args) >= 2:
        check(replaced_size(owner, *args[:3]))
    elif name == "join" and len(args) == 1:
        items = list(turns(args[0]))
        check(joined_size(owner, items))
        args = (items,)
    return args, kwargs


def binop_size(operator: str, left: Any, right: Any) -> int:
    """The length ``+`` or ``*`` would build from texts or lists (0 for numbers)."""
    sequences = str | bytes | list | tuple
    if operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        return len(left) + len(right)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, sequences) and isinstance(times, int):
                return len(seq) * times
    return 0


# Filters: every one is a step and has its result counted; three are predicted first.

def counted_filters(filters: dict[str, Callable]) -> dict[str, Callable]:
    """``filters`` with each one counted, ``replace``/``join``/``sum`` predicted, and the two
    internal filters ``budgeted`` trees use."""
    special = {"replace": _replace, "join": _join, "sum": _sum}
    wrapped = {name: _counted_filter(name, special.get(name, lambda f: f)(func))
               for name, func in filters.items()}
    return {**wrapped, TURNS: _turns_filter, CONCAT: _concat_filter}


def filter_steps(name: str, value: Any) -> int:
    """What a filter costs before it runs: one step, plus one per item for those that go through
    their items (``sort`` of a long text is slow), or one per ``TEXT_CHARS_PER_STEP`` characters
    of a text (one per ``SLOW_CHARS_PER_STEP`` for ``urlize`` and ``wordwrap``)."""
    if name in ITEM_FILTERS and isinstance(value, str | list | tuple | dict):
        return 1 + len(value)
    if not isinstance(value, str) or name in CONSTANT_FILTERS:
        return 1
    return 1 + len(value) // (SLOW_CHARS_PER_STEP if name in SLOW_FILTERS else TEXT_CHARS_PER_STEP)


def _counted_filter(name: str, func: Callable) -> Callable:
    value_at = 1 if hasattr(func, "jinja_pass_arg") else 0  # after the context, if passed

    @wraps(func)  # keeps Jinja's pass_context / pass_eval_context mark
    def counted(*args: Any, **kwargs: Any) -> Any:
        if _current.get() is not None:
            step(filter_steps(name, args[value_at] if len(args) > value_at else None))
        return built(func(*args, **kwargs))
    return counted


def _replace(func: Callable) -> Callable:
    @wraps(func)
    def replace(eval_ctx, s, old, new, count=None):
        check(replaced_size(str(s), str(old), str(new), -1 if count is None else count))
        return func(eval_ctx, s, old, new, count)
    return replace


def _join(func: Callable) -> Callable:
    @wraps(func)
    def join(eval_ctx, value, d="", attribute=None):
        if attribute is not None:
            value = map(make_attrgetter(eval_ctx.environment, attribute), value)
        items = list(turns(value))
        check(joined_size(str(d), items))
        return func(eval_ctx, items, d)
    return join


def _sum(func: Callable) -> Callable:
    @wraps(func)
    def sum_(environment, iterable, attribute=None, start=0):
        if not isinstance(start, int | float):
            raise SecurityError("'sum' adds numbers only; use 'join' to put texts together")
        return func(environment, iterable, attribute, start)
    return sum_


@pass_context  # never folded into a constant when the template is compiled
def _turns_filter(context: Any, iterable: Any) -> Any:
    return turns(iterable)


@pass_context
def _concat_filter(context: Any, values: list[Any]) -> str:
    check(sum(len(v) if isinstance(v, str) else len(str(v)) for v in values))
    return built((markup_join if context.eval_ctx.autoescape else str_join)(values))


class _Budgeted(NodeTransformer):
    """Loops count their turns; ``~`` predicts the length of its result."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        node = self.generic_visit(node)
        node.iter = _filter(node.iter, TURNS)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        node = self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), CONCAT)


def budgeted(tree: nodes.Template) -> nodes.Template:
    """Rewrite a parsed template so its loops count their turns and ``~`` predicts its size."""
    return _Budgeted().visit(tree)


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
