"""Checks an admin's template before it is saved and says, one sentence per problem, what is wrong.

``validate`` refuses, with the line: a syntax error; a variable the key does not declare; an
unknown filter or test; private or blocked attributes (``_x``, ``__class__``, ``ljust``…);
including other templates; turning autoescape off. Then it renders the template with the key's
example values, which catches missing fields and anything the sandbox refuses, and checks that
a subject is one line, not empty, and carries the ticket tag. ``static_problems`` is the
render-free half, also used on the hot path for stored admin versions (cached by source).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

from jinja2 import Template, TemplateSyntaxError, meta, nodes

from postdesk.errors import TemplateError
from postdesk.templates.budget import Budget, BudgetExceeded, spending
from postdesk.templates.environment import (BLOCKED_ATTRIBUTES, compile_template, environment,
                                            explain)
from postdesk.templates.examples import twisted
from postdesk.templates.keys import LOCALES, PARTS, TemplateKey, example_values, template_key

_ELSEWHERE = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_ESCAPE_SWITCH = (nodes.EvalContextModifier, nodes.ScopedEvalContextModifier)


@dataclass(frozen=True)
class Problem:
    """One reason a template is refused, where it is, in words an admin can act on."""

    part: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = self.part if self.line is None else f"{self.part}, line {self.line}"
        return f"{where}: {self.reason}"


class InvalidTemplate(TemplateError):
    """A template was refused; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)))


def validate(key: str, part: str, source: str) -> list[Problem]:
    """Every problem of ``source`` as the ``part`` of template ``key``; empty when it is fine."""
    spec = _checked(key, part)
    problems = list(static_problems(key, part, source))
    if problems:
        return problems
    template = compile_template(source, LOCALES[0], part)
    values = example_values(key)
    first = Budget.for_values(values)
    try:
        with spending(first):
            rendered = template.render(values)
    except Exception as exc:  # anything a template does wrong is reported, not raised
        line, reason = explain(exc)
        return [Problem(part, line, reason)]
    if problem := _over_budget_elsewhere(template, key, part, first.deadline):
        return [problem]
    return _subject_problems(spec, source, rendered) if part == "subject" else []


def _over_budget_elsewhere(template: Template, key: str, part: str,
                           deadline: float | None) -> Problem | None:
    """Render with the example values told another way (``examples.twisted``): a template
    whose loops only run for other tickets, longer texts or lists is refused now, not when a
    real mail comes. Only the budget is judged here; other failures with such values fall back
    to the default at send time, as documented."""
    for small in (False, True):
        values = twisted(example_values(key), small)
        try:
            with spending(Budget.for_values(values, deadline=deadline)):
                template.render(values)
        except BudgetExceeded as exc:
            line, _ = explain(exc)
            return Problem(part, line, f"{exc} with values other than the example's (another "
                                       f"ticket, longer texts or lists); {exc.advice}")
        except Exception:  # noqa: BLE001,S112 - not this check's business (see above)
            continue
    return None


@lru_cache(maxsize=512)
def static_problems(key: str, part: str, source: str) -> tuple[Problem, ...]:
    """The problems found without rendering: syntax, names, filters, unsafe constructs."""
    spec = _checked(key, part)
    env = environment(LOCALES[0], part)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return (Problem(part, exc.lineno, f"syntax error: {exc.message}"),)
    unknown = list(_unknown_filters(tree, env.filters, env.tests))
    found = [*_unsafe(tree), *unknown, *([] if unknown else _undeclared(tree, spec))]
    return tuple(Problem(part, line, reason) for line, reason in sorted(found))


def _checked(key: str, part: str) -> TemplateKey:
    if part not in PARTS:
        raise TemplateError(f"unknown template part {part!r} (parts: {', '.join(PARTS)})")
    return template_key(key)


def _unsafe(tree: nodes.Template) -> Iterator[tuple[int, str]]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
        if isinstance(name, str) and (name.startswith("_") or name in BLOCKED_ATTRIBUTES):
            yield node.lineno, f"uses the attribute {name!r}, which templates may not access"
    for node in tree.find_all(_ELSEWHERE):
        yield node.lineno, "uses another template (include, import or extends); " \
                           "each template must stand alone"
    for node in tree.find_all(_ESCAPE_SWITCH):
        if any(option.key == "autoescape" for option in node.options):
            yield node.lineno, "switches autoescape; customer text must always be escaped"


def _constant(node: nodes.Node) -> object:
    return node.value if isinstance(node, nodes.Const) else None


def _unknown_filters(tree: nodes.Template, filters: dict, tests: dict) -> Iterator[tuple[int, str]]:
    for kind, table, node_type in (("filter", filters, nodes.Filter), ("test", tests, nodes.Test)):
        for node in tree.find_all(node_type):
            if node.name not in table:
                known = ", ".join(sorted(name for name in table if name.isidentifier()))
                yield node.lineno, f"uses unknown {kind} {node.name!r} (available: {known})"


def _undeclared(tree: nodes.Template, spec: TemplateKey) -> Iterator[tuple[int, str]]:
    """Names used but not declared; needs known filters (Jinja compiles the tree to find them)."""
    loaded = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            loaded.setdefault(node.name, node.lineno)
    unknown = meta.find_undeclared_variables(tree) | ({"self"} & loaded.keys())
    allowed = ", ".join(spec.names)
    for name in unknown - set(spec.names):
        yield loaded.get(name, 1), f"uses undeclared variable {name!r} (allowed: {allowed})"


def _subject_problems(spec: TemplateKey, source: str, rendered: str) -> list[Problem]:
    text = rendered.strip()
    first_line = source[: len(source) - len(source.lstrip())].count("\n") + 1
    if not text:
        return [Problem("subject", None, "renders empty; a subject must say what the mail is "
                        "about")]
    if "\n" in text or "\r" in text:
        return [Problem("subject", first_line, "renders with a line break; a subject must be "
                        "a single line")]
    if "ticket" in spec.names and example_values(spec.name)["ticket"]["tag"] not in text:
        return [Problem("subject", None, "does not contain the ticket tag {{ ticket.tag }}; "
                        "replies to this mail would not find their ticket")]
    return []
