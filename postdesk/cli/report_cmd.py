"""``postdesk report``: how the desk did over a period, as text, JSON (for scripts) or a chart.

``--since`` takes a span back from now (``7d``, ``30d``, ``12w``; also ``12h``) or a UTC date
(``2026-01-01``); the period ends now. The figures come from ``store/reports.py`` and are
described field by field in docs/reports.md. ``--chart FILE.png`` draws the weekly volume and
satisfaction with matplotlib's Agg canvas (no screen needed; matplotlib is imported only then).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from postdesk.desk.escalations import STEPS
from postdesk.cli import cli
from postdesk.cli.commands import check_queue
from postdesk.cli.output import fail, to_json, when
from postdesk.cli.spans import parse_span
from postdesk.store import reports
from postdesk.store.db import utcnow

SINCE_HELP = "write e.g. 7d, 30d, 12w or a date like 2026-01-01"


def parse_since(text: str, now: datetime) -> datetime:
    """The start of the period ``text`` names; ``ValueError`` with what to write instead."""
    span = parse_span(text)
    if span is not None:
        if not span:
            raise ValueError(f"--since {text!r} is an empty period: {SINCE_HELP}")
        return now - span
    try:
        start = datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), UTC)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a period: {SINCE_HELP}") from None
    if start >= now:
        raise ValueError(f"--since {text!r} is not in the past: {SINCE_HELP}")
    return start


@cli.command("report")
@click.option("--since", default="30d", show_default=True, metavar="SPAN|DATE",
              help="Start of the period: 7d, 30d, 12w, or a date (UTC) like 2026-01-01.")
@click.option("--queue", metavar="QUEUE", help="Only tickets of this queue.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--chart", "chart", metavar="FILE.png",
              help="Also draw weekly volume and satisfaction to this PNG file.")
@click.pass_obj
def report(lazy, since: str, queue: str | None, as_json: bool, chart: str | None) -> None:
    """Tickets opened and resolved, response times, reminders, surveys, escalations."""
    if chart:
        _need_matplotlib()
    now = utcnow()
    try:
        start = parse_since(since, now)
    except ValueError as exc:
        fail(str(exc))
    app = lazy.app
    with app.db.reader() as session:
        _check_queue(session, app.settings, queue)
        data = reports.figures(session, start, now, queue, steps=STEPS)
        weeks = reports.weekly(session, start, now, queue) if chart else []
    if chart:
        draw_chart(weeks, chart, f"{when(start)} → {when(now)}, queue {queue or 'all'}")
    if as_json:
        click.echo(to_json(data))
    else:
        print_report(data)
    if chart and not as_json:
        click.echo(f"\nchart written to {chart}")


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401, PLC0415  (an optional dependency)
    except ImportError:
        fail("--chart needs matplotlib, which is not installed: install postdesk[chart] "
             "(pip install 'postdesk[chart]')")


def _check_queue(session, settings, queue: str | None) -> None:
    check_queue(session, settings, queue)


def print_report(data: dict) -> None:
    period = data["period"]
    rows = [
        ("Period", f"{when(period['since'])} → {when(period['until'])}"),
        ("Queue", data["queue"] or "all"),
        ("Opened", data["opened"]),
        ("Resolved", f"{data['resolved']} (auto-resolved: "
                     f"{_percent(data['auto_resolved_share'])})"),
        ("Closed", data["closed"]),
        ("First response", f"median {_duration(data['median_first_response_seconds'])} "
                           f"over {data['first_responses']} ticket(s)"),
        ("Resolution", f"median {_duration(data['median_resolution_seconds'])}"),
        ("Reminders sent", data["reminders_sent"]),
        ("Surveys", f"{data['surveys_sent']} sent, {data['surveys_answered']} answered "
                    f"({_percent(data['answer_rate'])}), "
                    f"{_percent(data['satisfaction_rate'])} satisfied"),
        ("Escalations", " · ".join(f"{k} {v}" for k, v in data["escalations_by_step"].items())),
    ]
    for label, value in rows:
        click.echo(f"{label:16}{value}")
    if data["low_scores"]:
        click.echo("\nLow scores")
    for low in data["low_scores"]:
        score = "bad" if low["score"] is None else f"{low['score']}/7"
        click.echo(f"  {low['ref']:>7}  {score:5} {' '.join(low['comment'].split()) or '-'}")


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f} %"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def draw_chart(weeks: list[dict], path: str, title: str) -> None:
    """Weekly opened/resolved bars above the weekly satisfaction rate, saved as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(max(6.0, 0.5 * len(weeks) + 2), 6), layout="constrained")
    FigureCanvasAgg(figure)
    volume, satisfaction = figure.subplots(2, 1, sharex=True)
    _volume(volume, weeks)
    _satisfaction(satisfaction, weeks)
    volume.set_title(title, fontsize=10)
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as exc:
        fail(f"cannot write the chart to {path}: {exc.strerror or exc}")


def _volume(axes, weeks: list[dict]) -> None:
    x = range(len(weeks))
    axes.bar([i - 0.2 for i in x], [w["opened"] for w in weeks], width=0.4, label="opened")
    axes.bar([i + 0.2 for i in x], [w["resolved"] for w in weeks], width=0.4, label="resolved")
    axes.set_ylabel("tickets per week")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="best", fontsize=8)


def _satisfaction(axes, weeks: list[dict]) -> None:
    rates = [float("nan") if w["satisfaction_rate"] is None else w["satisfaction_rate"] * 100
             for w in weeks]
    axes.plot(range(len(weeks)), rates, marker="o", color="tab:green")
    axes.set_ylim(0, 105)
    axes.set_ylabel("satisfied (%)")
    axes.set_xticks(range(len(weeks)), [w["week"] for w in weeks], rotation=60, fontsize=8)
