"""The files in deploy/ name only what exists: every ``postdesk`` command line of the systemd
units, the Dockerfile and compose.yaml parses against the real click command tree (with
``--help`` appended, so click checks the subcommands and flags and runs nothing), and every
configuration key they set (the example postdesk.toml, ``POSTDESK_<SECTION>__<KEY>`` variables)
is one ``postdesk.config`` accepts. Nothing is built or fetched."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from postdesk import config
from postdesk.cli import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
EXAMPLE = DEPLOY / "postdesk.toml"
_COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def unit(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, each key with all its values."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def assert_postdesk_command(argv: list[str]) -> None:
    """``argv`` (after the ``postdesk`` executable) names commands and flags that exist."""
    result = CliRunner().invoke(cli, [*argv, "--help"], prog_name="postdesk")
    assert result.exit_code == 0, (argv, result.output)
    assert result.output.startswith("Usage: postdesk"), result.output


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def postdesk_services() -> dict[str, dict]:
    return {name: service for name, service in compose()["services"].items()
            if service.get("image", "").startswith("postdesk")}


def substituted(value: str) -> str:
    """A compose value with each ``${VAR}`` replaced by its default (or a stand-in)."""
    return _COMPOSE_VARIABLE.sub(lambda m: m.group(2) if m.group(0)[len(m.group(1)) + 2:]
                                 .startswith(":-") else "secret", str(value))


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_each_unit_runs_an_existing_postdesk_command_hardened(path):
    keys = unit(path)
    assert keys["ExecStart"]
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop"):
        for line in keys.get(key, []):
            argv = shlex.split(line.lstrip("-+!@:"))
            assert argv[0] == "/opt/postdesk/.venv/bin/postdesk"
            assert_postdesk_command(argv[1:])
    expected = {"User": ["postdesk"], "ProtectSystem": ["strict"],
                "StateDirectory": ["postdesk"], "ConfigurationDirectory": ["postdesk"],
                "WorkingDirectory": ["/var/lib/postdesk"], "NoNewPrivileges": ["yes"],
                "ProtectHome": ["yes"], "PrivateTmp": ["yes"], "CapabilityBoundingSet": [""]}
    assert {key: keys.get(key) for key in expected} == expected
    daemon = keys["Type"] == ["simple"]
    assert keys.get("Restart") == (["on-failure"] if daemon else None)
    environment = dict(pair.split("=", 1) for line in keys["Environment"]
                       for pair in shlex.split(line))
    assert environment["POSTDESK_CONFIG"] == "/etc/postdesk/postdesk.toml"
    config.load(EXAMPLE, environ=environment)  # every POSTDESK_ variable names a real key


def test_the_units_split_the_gateway_the_scheduler_and_the_housekeeping():
    commands = {path.name: [shlex.split(line)[1:] for line in unit(path)["ExecStart"]]
                for path in UNITS}
    assert commands == {
        "postdesk-scheduler.service": [["scheduler"]],
        "postdesk-serve.service": [["serve", "--no-scheduler"]],
        "postdesk-housekeeping.service": [["quarantine", "purge", "--older-than", "30d"],
                                          ["outbox", "purge", "--sent", "--older-than", "90d"]]}
    timer = unit(DEPLOY / "systemd" / "postdesk-housekeeping.timer")
    assert timer["OnCalendar"] == ["daily"]
    sysusers = (DEPLOY / "systemd" / "postdesk.sysusers.conf").read_text()
    assert re.search(r"^u postdesk - .* /var/lib/postdesk ", sysusers, re.M)


def test_the_example_configuration_names_only_real_keys():
    settings = config.load(EXAMPLE, environ={})
    assert settings.database.url == "sqlite:////var/lib/postdesk/postdesk.db"
    assert (settings.smtp.listen, settings.smtp.lmtp) == ("127.0.0.1:2424", True)


def test_the_dockerfile_runs_an_existing_command_as_a_user_from_a_slim_base():
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    by_name: dict[str, list[str]] = {}
    for instruction in "\n".join(lines).replace("\\\n", " ").splitlines():
        if instruction.strip():
            name, _, rest = instruction.strip().partition(" ")
            by_name.setdefault(name, []).append(rest.strip())
    assert re.fullmatch(r"python:3\.1[1-9]-slim", by_name["FROM"][0])
    assert by_name["USER"] == ["postdesk"]
    assert json.loads(by_name["ENTRYPOINT"][0]) == ["postdesk"]
    assert_postdesk_command(json.loads(by_name["CMD"][0]))
    root = DEPLOY.parent
    for copy in by_name["COPY"]:
        *sources, _target = copy.split()
        assert all((root / source).exists() for source in sources), copy
    extras = re.findall(r"\.\[([\w,]+)\]", " ".join(by_name["RUN"]))
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert extras and set(",".join(extras).split(",")) <= set(project["optional-dependencies"])


def test_compose_runs_existing_commands_with_real_keys_and_postgresql():
    services = postdesk_services()
    assert set(services) == {"init", "serve", "scheduler"}
    for name, service in services.items():
        assert_postdesk_command(service["command"])
        environment = {key: substituted(value) for key, value in service["environment"].items()}
        settings = config.load(EXAMPLE, environ=environment)
        assert settings.database.url.startswith("postgresql+psycopg://postdesk:"), name
    assert [services[n]["command"] for n in ("init", "serve", "scheduler")] == [
        ["init"], ["serve", "--no-scheduler"], ["scheduler"]]
    assert compose()["services"]["db"]["image"].startswith("postgres:")
    for name in ("serve", "scheduler"):
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"}}
        assert services[name]["restart"] == "on-failure"


def test_a_wrong_flag_or_key_would_be_caught():
    """The checks above are not vacuous: a misspelt flag or key fails them."""
    assert CliRunner().invoke(cli, ["serve", "--no-schedular", "--help"]).exit_code == 2
    assert CliRunner().invoke(cli, ["schedule", "--help"]).exit_code == 2
    with pytest.raises(config.ConfigError):
        config.load(EXAMPLE, environ={"POSTDESK_SMTP__LISTN": "0.0.0.0:2424"})
