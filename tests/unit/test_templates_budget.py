"""The rendering budget: loop turns and calls, characters built, the deadline; what would build a
huge result is refused before it is built; validation tries other values than the example's;
an admin version over budget at send time gives way to the packaged default."""

from __future__ import annotations

import itertools

import pytest

from postdesk.templates import Renderer, example_values, validate
from postdesk.templates.budget import Budget, BudgetExceeded, spending
from postdesk.templates.environment import compile_template
from tests.unit.test_templates_render import FakeOverrides

X = "'x' * 10000"
NESTED = (f"{{% for a in {X} %}}{{% for b in {X} %}}{{% for c in {X} %}}{{{{ c }}}}"
          "{% endfor %}{% endfor %}{% endfor %}")


def run(source: str, budget: Budget | None = None, values: dict | None = None,
        part: str = "text") -> str:
    template = compile_template(source, "fr", part)
    with spending(budget or Budget(chars=50_000)):
        return template.render(example_values("ticket_created") if values is None else values)


def over_budget(source: str, budget: Budget | None = None, part: str = "text") -> str:
    with pytest.raises(BudgetExceeded) as caught:
        run(source, budget, part=part)
    return caught.value.what


def test_each_loop_turn_is_a_step() -> None:
    assert run("{% for c in 'abc' %}{{ c }}{% endfor %}", Budget(steps=3)) == "abc"
    assert over_budget("{% for c in 'abcd' %}{{ c }}{% endfor %}",
                       Budget(steps=3)) == "more than 3 loop turns and calls"


def test_loops_inside_loops_stop_at_the_step_limit() -> None:
    assert over_budget(NESTED, Budget(chars=10**9)) == "more than 25,000 loop turns and calls"


@pytest.mark.parametrize("source", [
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",  # each call is a step
    f"{{% for x in 'ab' recursive %}}{{{{ loop({X}) }}}}{{% endfor %}}",  # loop() turns count
    f"{{% for a in {X} %}}{{{{ ticket.ref|upper|lower }}}}{{% endfor %}}",  # filters count
])
def test_calls_filters_and_recursive_loops_are_steps(source: str) -> None:
    assert "loop turns and calls" in over_budget(source, Budget(steps=50, chars=10**9))


def test_the_deadline_is_looked_at_on_every_step() -> None:
    ticks = itertools.count()
    budget = Budget(steps=10**9, chars=10**9, seconds=100, clock=lambda: next(ticks))
    assert over_budget(NESTED, budget) == "more than 100 s of work"


def test_an_exhausted_budget_stays_exhausted() -> None:
    budget = Budget(steps=1)
    with pytest.raises(BudgetExceeded):
        budget.step(), budget.step()
    with pytest.raises(BudgetExceeded):
        budget.spend(0)


@pytest.mark.parametrize("source", [
    f"{{{{ ({X})|replace('x', {X}) }}}}",  # filter
    f"{{{{ ({X}).replace('x', {X}) }}}}",  # method
    f"{{{{ ({X})|list|join({X}) }}}}",  # filter
    f"{{{{ ({X}).join(({X})|list) }}}}",  # method
    f"{{% set a = {X} %}}{{% set b = a ~ a ~ a ~ a ~ a ~ a %}}{{{{ b|length }}}}",  # ~
    f"{{% set a = ({X})|list %}}{{% set b = a + a + a + a + a + a %}}{{{{ b|length }}}}",  # +
    f"{{% for a in {X} %}}{{{{ ticket.subject }}}}{{% endfor %}}",  # the output itself
    f"{{% macro m() %}}{{% for a in {X} %}}{{{{ ticket.subject }}}}{{% endfor %}}"
    "{% endmacro %}{{ m()|length }}",  # a buffered block
])
def test_what_would_build_too_much_text_is_refused(source: str) -> None:
    assert over_budget(source, Budget(chars=50_000)) == "more than 50,000 characters built"


def test_a_huge_replace_is_refused_before_it_is_built() -> None:
    budget = Budget(chars=50_000)
    over_budget(f"{{{{ ({X})|replace('x', {X}) }}}}", budget)
    assert budget.spent_chars < 10**6  # the 10**8 characters were never built


def test_the_budget_grows_with_the_text_of_the_values() -> None:
    long = "y" * 200_000
    assert Budget.for_values({"a": [long, {"b": long}], "n": 3}).chars == 1_000_000 + 8 * 400_000


@pytest.mark.parametrize(("source", "reason"), [
    ("{{ [[1]]|sum(start=[]) }}", "'sum' adds numbers only"),
    ("{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}", "number too large"),
    ("{{ 1 .to_bytes(1000000000, 'big') }}", "'to_bytes', which templates may not access"),
    ("{{ 'a'.translate({97: 'b'}) }}", "'translate', which templates may not access"),
])
def test_other_ways_to_build_huge_values_are_refused(source: str, reason: str) -> None:
    assert reason in str(validate("ticket_created", "text", source))


def test_validation_refuses_a_template_that_only_loops_for_other_tickets() -> None:
    source = "{% if ticket.id != 1042 %}" + NESTED + "{% endif %}{{ ticket.tag }}"
    [problem] = validate("ticket_created", "text", source)
    assert str(problem).startswith("text, line 1: goes over the rendering budget (more than "
                                   "25,000 loop turns and calls) with values other than the "
                                   "example's")


@pytest.mark.parametrize("guard", ["{% if not customer.name %}", "{% if ticket.id < 5 %}",
                                   "{% if ticket.subject|length > 1000 %}"])
def test_validation_tries_small_values_and_long_texts(guard: str) -> None:
    assert validate("ticket_created", "text", guard + NESTED + "{% endif %}")


def test_a_template_with_ordinary_loops_passes() -> None:
    source = ("{% for t in tickets %}{{ t.ref }} {{ t.subject|truncate(40) }}\n{% for m in "
              "detail.messages %}{{ m.author }}: {{ m.text|wordcount }}\n{% endfor %}{% endfor %}")
    assert validate("ticket_history", "text", source) == []


def test_over_budget_at_send_time_the_default_is_used() -> None:
    source = "{% if ticket.id != 1042 %}" + NESTED + "{% endif %}{{ ticket.ref }}"
    renderer = Renderer(FakeOverrides({("ticket_created", "fr", "text"): source}))
    values = {**example_values("ticket_created"),
              "ticket": {**example_values("ticket_created")["ticket"], "id": 7}}
    mail = renderer.render("ticket_created", "fr", values)
    assert mail.text.startswith("Bonjour Julie Moreau")
    assert "goes over the rendering budget" in mail.fallback_error


def test_packaged_defaults_are_not_counted() -> None:
    values = example_values("ticket_created")
    values = {**values, "ticket": {**values["ticket"], "subject": "z" * 3_000_000}}
    assert "z" * 3_000_000 in Renderer().render("ticket_created", "fr", values).text


SUBJECT = len(example_values("ticket_created")["ticket"]["subject"])


@pytest.mark.parametrize(("source", "steps"), [
    ("{{ ticket.subject|sort|join }}", 1 + SUBJECT + 1 + SUBJECT),  # one step per item
    ("{{ ticket.subject|upper }}", 1),  # a short text: one step
])
def test_a_filter_costs_one_step_plus_its_input(source: str, steps: int) -> None:
    budget = Budget()
    run(source, budget)
    assert budget.spent_steps == steps


def test_a_slow_filter_on_a_long_text_is_refused_before_it_runs() -> None:
    budget = Budget(chars=10**9)
    values = {**example_values("ticket_created"),
              "ticket": {**example_values("ticket_created")["ticket"], "subject": "a b" * 10**6}}
    with pytest.raises(BudgetExceeded):
        run("{{ ticket.subject|sort|length }}", budget, values)
    assert budget.spent_steps > 25_000  # counted before, so ``sort`` never ran


def test_the_three_parts_of_a_mail_share_one_deadline() -> None:
    ticks = itertools.count(step=0.1)  # each look at the clock takes 0.1 s
    loop = "{% for c in 'abcd' %}{{ c }}{% endfor %}{{ ticket.tag }}"
    renderer = Renderer(FakeOverrides({("ticket_created", "fr", part): loop
                                       for part in ("subject", "text", "html")}),
                        clock=lambda: next(ticks))
    mail = renderer.render("ticket_created", "fr", example_values("ticket_created"))
    assert "more than 1 s of work" in mail.fallback_error  # 3 parts x 4 looks > 1 s
