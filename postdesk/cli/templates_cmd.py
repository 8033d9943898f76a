"""``postdesk templates``: admins list, show, save, edit, preview, compare, revert, export and
import the notification templates. A change is validated before anything is stored and becomes
the next version of its template (key + locale); history is never rewritten. Version N of a
template is the change numbered N, and the template "as of N" is what mails used right after it
(docs/templates.md, "Editing templates from the command line"). Errors are one line on stderr.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from postdesk.cli import EX_TEMPFAIL, cli
from postdesk.cli.output import fail, table, to_json, when
from postdesk.errors import TemplateError
from postdesk.store import template_versions as versions
from postdesk.store import tickets
from postdesk.store.clock import as_utc, utcnow
from postdesk.templates import (KEYS, LOCALES, PARTS, InvalidTemplate, Problem, example_values,
                                packaged_source, template_key, validate)
from postdesk.templates.render import SUFFIXES

PART_OF_SUFFIX = {suffix: part for part, suffix in SUFFIXES.items()}
HEADER = "{# postdesk: "


class TemplatesGroup(click.Group):
    """Turns the usage, template and store errors of every subcommand into one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            fail(f"{' '.join(exc.format_message().split())} (see postdesk templates "
                 f"{ctx.invoked_subcommand or ''} --help)")
        except TemplateError as exc:
            fail(str(exc))
        except (OperationalError, ProgrammingError) as exc:
            fail(f"cannot read the templates: {str(exc.orig).strip().splitlines()[0]} "
                 "(is the database reachable and created? run postdesk init)", EX_TEMPFAIL)


@cli.group("templates", cls=TemplatesGroup)
def templates_group() -> None:
    """Edit, preview and version the notification templates."""


def locale_option(required: bool):
    help_text = "Language: fr or en" + ("." if required else " (default: the desk's).")
    return click.option("--locale", required=required, help=help_text)


def writer_options(command):
    command = click.option("--comment", default="", help="Why this change (in the history).")(
        command)
    return click.option("--author", help="Who (default: $POSTDESK_AUTHOR, else $USER).")(command)


def checked(lazy, key: str, locale: str | None) -> tuple[str, str]:
    template_key(key)  # an unknown key lists the keys
    locale = locale or lazy.app.settings.desk.locale
    if locale not in LOCALES:
        fail(f"unknown locale {locale!r} (locales: {', '.join(LOCALES)})")
    return key, locale


def effective(key: str, locale: str, part: str, row) -> str:
    return row.source if row is not None and row.source else packaged_source(key, locale, part)


def source_problems(key: str, part: str, source: str) -> list[Problem]:
    if not source.strip():
        return [Problem(part, None, "is empty; to go back to the packaged default, use "
                                    "postdesk templates revert --to-default")]
    return validate(key, part, source)


def refuse(problems, outcome: str = "nothing saved") -> None:
    for problem in problems:
        click.echo(f"postdesk: {problem}", err=True)
    fail(f"{outcome}: {len(problems)} problem(s); fix them and try again")


def read_source(path: str) -> str:
    try:
        data = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"there is no file {path} (give an existing file, or - for standard input)")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text (save it as UTF-8)")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror} (check the path and its permissions)")
    return data.replace("\r\n", "\n")


def version_arg(text: str) -> str | int:
    if text in ("default", "current") or text.isdigit():
        return text if not text.isdigit() else int(text)
    fail(f"{text!r} is not a version (give a number from the history, current or default)")


def state(session, key: str, locale: str, version: str | int | None) -> dict:
    """Each part's row as of ``version`` (None: now; "default": none); unknown versions fail."""
    if version == "default":
        return {}
    if version in (None, "current"):
        return {part: row for part in PARTS
                if (row := versions.current(session, key, locale, part)) is not None}
    if not versions.get_version(session, key, locale, version):
        fail(f"{key} ({locale}) has no version {version} (see the versions with "
             f"postdesk templates history {key} --locale {locale})")
    return versions.as_of(session, key, locale, version)


def save_changes(session, key: str, locale: str, sources: dict[str, str], author: str | None,
                 comment: str) -> list:
    """Save the parts whose text would change as one new version (their rows; [] if none)."""
    changed = {part: source for part, source in sources.items()
               if effective(key, locale, part, versions.current(session, key, locale, part))
               != (source or packaged_source(key, locale, part))}
    if not changed:
        return []
    author = author or os.environ.get("POSTDESK_AUTHOR") or os.environ.get("USER") or ""
    return versions.save_parts(session, key, locale, changed, author, comment, utcnow())


def report(key: str, locale: str, rows: list) -> None:
    if not rows:
        click.echo(f"{key} ({locale}): unchanged, nothing saved")
    else:
        parts = ", ".join(row.part for row in rows)
        click.echo(f"{key} ({locale}) {parts}: saved as version {rows[0].version}")


@templates_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_templates(lazy, as_json: bool) -> None:
    """One line per template (key × locale): overridden or default, current version."""
    with lazy.app.db.reader() as session:
        rows = versions.current_all(session)
    entries = [summary(key, locale, [r for r in rows if (r.key, r.locale) == (key, locale)])
               for key in KEYS for locale in LOCALES]
    if as_json:
        click.echo(to_json(entries))
        return
    table(["key", "locale", "state", "version", "author", "updated", "parts"],
          [(e["key"], e["locale"], e["state"], e["version"], e["author"],
            when(e["updated_at"]), ", ".join(e["parts"])) for e in entries])


def summary(key: str, locale: str, rows: list) -> dict:
    newest = max(rows, key=lambda row: row.version, default=None)
    parts = [part for part in PARTS if any(r.part == part and r.source for r in rows)]
    return {"key": key, "locale": locale, "state": "overridden" if parts else "default",
            "version": newest and newest.version, "author": newest and newest.author,
            "updated_at": newest and as_utc(newest.created_at), "parts": parts}


@templates_group.command("show")
@click.argument("key")
@locale_option(required=False)
@click.option("--version", "version", help="A version number, current or default.")
@click.option("--part", type=click.Choice(PARTS), help="Print only this part's source.")
@click.pass_obj
def show(lazy, key: str, locale: str | None, version: str | None, part: str | None) -> None:
    """The parts of the current template (or of --version), and where each comes from."""
    key, locale = checked(lazy, key, locale)
    with lazy.app.db.reader() as session:
        rows = state(session, key, locale, version and version_arg(version))
    for name in (part,) if part else PARTS:
        row = rows.get(name)
        if not part:
            origin = (f"version {row.version}, {row.author or '-'}, {when(row.created_at)}"
                      if row is not None and row.source else "packaged default")
            click.echo(f"==> {key} ({locale}) {name}: {origin}")
        click.echo(effective(key, locale, name, row), nl=not part)


@templates_group.command("save")
@click.argument("key")
@locale_option(required=True)
@click.option("--part", type=click.Choice(PARTS), required=True)
@click.option("--file", "path", required=True, help="The new source; - reads standard input.")
@writer_options
@click.pass_obj
def save(lazy, key, locale, part, path, comment, author) -> None:
    """Validate a part and save it as the next version of the template."""
    key, locale = checked(lazy, key, locale)
    source = read_source(path)
    if problems := source_problems(key, part, source):
        refuse(problems)
    with lazy.app.db.session() as session:
        rows = save_changes(session, key, locale, {part: source}, author, comment)
    report(key, locale, rows)


@templates_group.command("edit")
@click.argument("key")
@locale_option(required=True)
@click.option("--part", type=click.Choice(PARTS), default="text", show_default=True)
@writer_options
@click.pass_obj
def edit(lazy, key, locale, part, comment, author) -> None:
    """Open $EDITOR (else $VISUAL, else vi) on a part; a refused save reopens it."""
    key, locale = checked(lazy, key, locale)
    with lazy.app.db.reader() as session:
        row = versions.current(session, key, locale, part)
    source = edit_until_valid(key, locale, part, effective(key, locale, part, row))
    with lazy.app.db.session() as session:
        rows = save_changes(session, key, locale, {part: source}, author, comment)
    report(key, locale, rows)


def edit_until_valid(key: str, locale: str, part: str, source: str) -> str:
    """Like ``git commit``: problems come back at the top of the file as Jinja comments."""
    with tempfile.TemporaryDirectory(prefix="postdesk-") as folder:
        path, header = Path(folder) / f"{key}.{locale}.{SUFFIXES[part]}", ""
        while True:
            path.write_text(header + source, encoding="utf-8")
            run_editor(path)
            edited = strip_header(path.read_text(encoding="utf-8").replace("\r\n", "\n"))
            if not edited.strip() or (header and edited == source):
                fail("edit aborted (the file was emptied or not changed): nothing saved")
            if edited == source or not (problems := validate(key, part, edited)):
                return edited
            for problem in problems:
                click.echo(f"postdesk: {problem}", err=True)
            source, header = edited, error_header(problems)


def error_header(problems: list[Problem]) -> str:
    """Comment lines for the top of the file; their line numbers count the file's lines."""
    shift = len(problems) + 1
    lines = [f"{HEADER}not saved: fix the problems below and save again, or empty the file to "
             "abort (these lines are removed) #}"]
    for problem in problems:
        line = problem.line and problem.line + shift
        where = problem.part if line is None else f"{problem.part}, line {line}"
        reason = problem.reason.replace("#}", "# }").replace("\n", " ")
        lines.append(f"{HEADER}{where}: {reason} #}}")
    return "\n".join(lines) + "\n"


def strip_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(HEADER) and lines[0].rstrip().endswith("#}"):
        lines.pop(0)
    return "".join(lines)


def run_editor(path: Path) -> None:
    editor = os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi"
    code = subprocess.call(["/bin/sh", "-c", f'{editor} "$@"', editor, str(path)])
    if code != 0:
        fail(f"the editor ({editor}) exited with status {code}: nothing saved "
             "(set $EDITOR to a working editor)")


@templates_group.command("preview")
@click.argument("key")
@locale_option(required=False)
@click.option("--ticket", "ticket_ref", help="Use a real ticket's values (12 or #12).")
@click.option("--file", "path", help="A draft source for --part, not saved; - reads stdin.")
@click.option("--part", type=click.Choice(PARTS), default="text", show_default=True)
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write HTML here.")
@click.pass_obj
def preview(lazy, key, locale, ticket_ref, path, part, html_out) -> None:
    """Render with the example values (or a ticket's) and print the subject and text."""
    key, locale = checked(lazy, key, locale)
    values = ticket_values(lazy.app, key, ticket_ref) if ticket_ref else None
    drafts = {part: read_source(path)} if path else None
    try:
        rendered = lazy.app.renderer.preview(key, locale, values, drafts)
    except InvalidTemplate as exc:
        refuse(exc.problems, "no preview")
    if rendered.fallback_error:
        click.echo(f"postdesk: warning: {rendered.fallback_error}; showing the default", err=True)
    click.echo(f"Subject: {rendered.subject}\n\n{rendered.text}")
    if html_out:
        Path(html_out).write_text(rendered.html, encoding="utf-8")


def ticket_values(app, key: str, ticket_ref: str) -> dict:
    """The key's example values, with the ticket, its requester and last customer mail."""
    number = ticket_ref.lstrip("#")
    with app.db.reader() as session:
        ticket = tickets.get(session, int(number)) if number.isdigit() else None
        if ticket is None:
            fail(f"there is no ticket {ticket_ref} (see postdesk tickets list)")
        found = app.desk.notifier.ticket_variables(session, ticket)
        found["customer"] = dict(found["ticket"]["requester"])
        last = tickets.last_message(session, ticket.id, direction="in", kinds=("customer",))
        if last is not None:
            files = tickets.attachments(session, [last.id])
            found["message"] = {"text": last.text, "from_name": last.from_name,
                                "from_address": last.from_addr, "subject": last.subject,
                                "at": last.created_at,
                                "attachments": [f.filename for f in files if not f.rejected]}
    values = example_values(key)
    return values | {name: value for name, value in found.items() if name in values}


@templates_group.command("history")
@click.argument("key")
@locale_option(required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def history(lazy, key, locale, as_json: bool) -> None:
    """Every saved version of a template, newest first."""
    key, locale = checked(lazy, key, locale)
    with lazy.app.db.reader() as session:
        rows = versions.history(session, key, locale)
    entries = [{"version": r.version, "part": r.part, "default": not r.source,
                "author": r.author, "created_at": as_utc(r.created_at), "comment": r.comment}
               for r in rows]
    if as_json:
        click.echo(to_json(entries))
        return
    table(["version", "part", "author", "saved", "comment"],
          [(e["version"], e["part"] + (" (default)" if e["default"] else ""), e["author"],
            when(e["created_at"]), e["comment"]) for e in entries],
          empty=f"{key} ({locale}) was never changed: it uses the packaged default")


@templates_group.command("diff")
@click.argument("key")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@locale_option(required=False)
@click.option("--part", type=click.Choice(PARTS), help="Compare only this part.")
@click.pass_obj
def diff(lazy, key, old, new, locale, part) -> None:
    """Unified diff of the template as of version A and B (a number, current or default)."""
    key, locale = checked(lazy, key, locale)
    with lazy.app.db.reader() as session:
        left = state(session, key, locale, version_arg(old))
        right = state(session, key, locale, version_arg(new))
    found = False
    for name in (part,) if part else PARTS:
        label = f"{key}.{locale}.{SUFFIXES[name]}"
        lines = list(difflib.unified_diff(
            effective(key, locale, name, left.get(name)).splitlines(keepends=True),
            effective(key, locale, name, right.get(name)).splitlines(keepends=True),
            f"{label} ({old})", f"{label} ({new})"))
        found = found or bool(lines)
        click.echo("".join(line if line.endswith("\n") else line + "\n" for line in lines),
                   nl=False)
    if not found:
        click.echo(f"no difference between {old} and {new}")


@templates_group.command("revert")
@click.argument("key")
@locale_option(required=True)
@click.option("--version", "version", type=int, help="Restore the template as of this version.")
@click.option("--to-default", is_flag=True, help="Go back to the packaged default.")
@click.option("--part", type=click.Choice(PARTS), help="Restore only this part.")
@writer_options
@click.pass_obj
def revert(lazy, key, locale, version, to_default, part, comment, author) -> None:
    """Save an older state as a new version (history is kept)."""
    key, locale = checked(lazy, key, locale)
    if (version is None) == (not to_default):
        fail(f"give --version N or --to-default (see postdesk templates history {key})")
    with lazy.app.db.reader() as session:
        rows = state(session, key, locale, "default" if to_default else version)
    sources = {name: rows[name].source if name in rows else ""
               for name in ((part,) if part else PARTS)}
    problems = [p for name, source in sources.items() if source
                for p in validate(key, name, source)]
    if problems:
        refuse(problems)
    comment = comment or ("back to the packaged default" if to_default
                          else f"revert to version {version}")
    with lazy.app.db.session() as session:
        rows = save_changes(session, key, locale, sources, author, comment)
    report(key, locale, rows)


@templates_group.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.pass_obj
def export(lazy, folder: str) -> None:
    """Write every current override as FOLDER/<locale>/<key>.<subject|txt|html>."""
    root = Path(folder)
    if root.exists() and any(root.iterdir()):
        fail(f"{folder} is not empty (export into a new or empty folder)")
    with lazy.app.db.reader() as session:
        rows = [row for row in versions.current_all(session) if row.source]
    manifest = []
    for row in rows:
        name = f"{row.locale}/{row.key}.{SUFFIXES[row.part]}"
        (root / row.locale).mkdir(parents=True, exist_ok=True)
        (root / name).write_text(row.source, encoding="utf-8")
        manifest.append({"file": name, "key": row.key, "locale": row.locale, "part": row.part,
                         "version": row.version, "author": row.author,
                         "saved_at": as_utc(row.created_at), "comment": row.comment})
    root.mkdir(parents=True, exist_ok=True)
    (root / "MANIFEST.json").write_text(
        to_json({"exported_at": utcnow(), "files": manifest}) + "\n", encoding="utf-8")
    click.echo(f"{len(rows)} overridden part(s) written to {folder}")


@templates_group.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@writer_options
@click.pass_obj
def import_(lazy, folder: str, comment: str, author: str | None) -> None:
    """Validate every file of FOLDER, then save each changed part; all or nothing."""
    root = Path(folder)
    if not root.is_dir():
        fail(f"there is no folder {folder} (give a folder written by postdesk templates export)")
    found, problems = scan(root)
    if problems:
        refuse(problems, "nothing imported")
    with lazy.app.db.session() as session:
        saved = {(key, locale): save_changes(session, key, locale, sources, author,
                                             comment or f"import from {root.name}")
                 for (key, locale), sources in found.items()}
    for (key, locale), rows in saved.items():
        report(key, locale, rows)
    if not saved:
        click.echo(f"no template files in {folder}: nothing imported")


def scan(root: Path) -> tuple[dict[tuple[str, str], dict[str, str]], list[str]]:
    """The sources of ``root`` by (key, locale), and every problem found, files first."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    problems = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name == "MANIFEST.json" or any(s.startswith(".") for s in name.split("/")):
            continue
        locale, _, file = name.partition("/")
        key, _, suffix = file.rpartition(".")
        if misplaced := misplacement(locale, key, suffix, file):
            problems.append(f"{name}: {misplaced}")
            continue
        try:
            source = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        except UnicodeDecodeError:
            problems.append(f"{name}: is not UTF-8 text (save it as UTF-8)")
            continue
        problems += [f"{name}: {p}" for p in source_problems(key, PART_OF_SUFFIX[suffix], source)]
        found.setdefault((key, locale), {})[PART_OF_SUFFIX[suffix]] = source
    return found, problems


def misplacement(locale: str, key: str, suffix: str, file: str) -> str | None:
    if not file or "/" in file:
        return "is not a template file (expected <locale>/<key>.<subject|txt|html>)"
    if locale not in LOCALES:
        return f"unknown locale {locale!r} (locales: {', '.join(LOCALES)})"
    if key not in KEYS:
        return f"unknown template key {key!r} (keys: {', '.join(KEYS)})"
    if suffix not in PART_OF_SUFFIX:
        return f"unknown part {suffix!r} (suffixes: {', '.join(PART_OF_SUFFIX)})"
    return None
