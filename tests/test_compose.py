"""compose.yaml against the code (there is no Docker engine here): every service the
README names exists, every command parses in the real CLI, every CAREJOURNEY_*/KAFKA_*
variable our services rely on is a Settings field documented in the README and parses,
and the ports, hosts and topics agree with each other."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from domain.database import library_env
from domain.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUR_PREFIXES = ("CAREJOURNEY_", "KAFKA_")
SERVICES = {
    "postgres",
    "kafka",
    "kafka-topics",
    "db-roles",
    "api",
    "events-consumer",
    "adt-consumer",
    "mllp",
    "checkpointer",
    "projections",
    "alerts-publisher",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running our image (the rest are PostgreSQL and Kafka's own)."""
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("image", "").startswith("carejourney")
    }


def _interpolate(value: Any) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` with nothing set."""

    def one(match: re.Match[str]) -> str:
        kind, rest = match.group(2), match.group(3) or ""
        return rest if kind == "-" else ("set-by-operator" if kind == "?" else "")

    return re.sub(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}", one, str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(v) for k, v in env.items()}


def _env_name(field: str, info: Any) -> set[str]:
    names = {f"CAREJOURNEY_{field.upper()}"}
    alias = getattr(info, "validation_alias", None)
    names.update(getattr(alias, "choices", []) or [])
    return names


def _settings_names() -> set[str]:
    out: set[str] = set()
    for field, info in Settings.model_fields.items():
        out |= _env_name(field, info)
    return out


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def _readme_config_names() -> set[str]:
    section = _readme().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.M))


def test_services_are_the_ones_the_readme_names(compose: dict[str, Any]) -> None:
    section = _readme().split("## Deployment", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M))
    assert named == SERVICES == set(compose["services"])
    assert (ROOT / "Dockerfile").is_file()
    for service in _ours(compose).values():
        assert service["build"] == "."


def test_every_variable_of_ours_is_a_documented_setting(compose: dict[str, Any]) -> None:
    settings_names, documented = _settings_names(), _readme_config_names()
    used: set[str] = set()
    for name, service in _ours(compose).items():
        env = _environment(service)
        ours = {k: v for k, v in env.items() if k.startswith(OUR_PREFIXES)}
        assert set(env) == set(ours), f"{name}: variables that no setting reads"
        used |= set(ours)
        unknown = set(ours) - settings_names
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"
        # The values parse: the same object the service builds at start-up.
        with pytest.MonkeyPatch.context() as mp:
            for key in os.environ:
                if key.startswith(OUR_PREFIXES):
                    mp.delenv(key)
            for key, value in ours.items():
                mp.setenv(key, value)
            settings = Settings()
        assert settings.database_url and settings.kafka_bootstrap_servers
    undocumented = used - documented
    assert not undocumented, f"not in the README's configuration table: {sorted(undocumented)}"
    assert {
        "CAREJOURNEY_DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "CAREJOURNEY_PSEUDONYM_KEY",
    } <= used


def test_commands_exist_in_the_cli(compose: dict[str, Any]) -> None:
    runner = CliRunner()
    expected = {
        "api": ["serve"],
        "events-consumer": ["consume"],
        "adt-consumer": ["consume", "--adt"],
        "mllp": ["mllp"],
        "checkpointer": ["checkpoint", "--every", "60"],
        "projections": ["projections", "run"],
        "alerts-publisher": ["alerts", "publish"],
        "db-roles": ["db", "app-role"],
    }
    for name, service in _ours(compose).items():
        command = service["command"]
        assert command[0] == "carejourney"
        assert command[1:] == expected[name]
        result = runner.invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, (name, result.output)


def app_role_of(services: dict[str, Any]) -> dict[str, str]:
    return library_env(_environment(services["db-roles"])["CAREJOURNEY_APP_DATABASE_URL"])


def test_hosts_ports_and_topics_agree(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka_env = _environment(services["kafka"])
    postgres_env = _environment(services["postgres"])
    topics_command = " ".join(services["kafka-topics"]["command"])
    for name, service in _ours(compose).items():
        env = _environment(service)
        db = library_env(env["CAREJOURNEY_DATABASE_URL"])
        assert db["POSTGRES_HOST"] == "postgres" and db["POSTGRES_PORT"] == "5432"
        assert db["POSTGRES_DBNAME"] == postgres_env["POSTGRES_DB"]
        # Only db-roles connects as the owner; everything else as the role it makes,
        # and only once it has made it (docs/integrity.md, "Roles").
        if name == "db-roles":
            assert db["POSTGRES_USER"] == postgres_env["POSTGRES_USER"]
            app_role = library_env(env["CAREJOURNEY_APP_DATABASE_URL"])
            assert app_role["POSTGRES_USER"] != postgres_env["POSTGRES_USER"]
            assert service["restart"] == "no"
        else:
            assert db["POSTGRES_USER"] == app_role_of(services)["POSTGRES_USER"]
            assert db["POSTGRES_PASSWORD"] == app_role_of(services)["POSTGRES_PASSWORD"]
            depends_on_roles = service["depends_on"]["db-roles"]["condition"]
            assert depends_on_roles == "service_completed_successfully", name
        assert (
            f"PLAINTEXT://{env['KAFKA_BOOTSTRAP_SERVERS']}"
            in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        )
        for key, topic in env.items():
            if key.endswith("_TOPIC"):
                assert re.search(rf"\b{re.escape(topic)}\b", topics_command), (name, topic)
        depends = service.get("depends_on", {})
        assert depends["postgres"]["condition"] == "service_healthy"
        if name.endswith("consumer"):
            assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
            assert service["stop_signal"] == "SIGTERM"
    api_env = _environment(services["api"])
    assert api_env["CAREJOURNEY_API_HOST"] == "0.0.0.0"
    (mapping,) = services["api"]["ports"]
    assert mapping.split(":")[-1] == api_env["CAREJOURNEY_API_PORT"]
    mllp_env = _environment(services["mllp"])
    assert mllp_env["CAREJOURNEY_MLLP_HOST"] == "0.0.0.0"
    (mapping,) = services["mllp"]["ports"]
    assert mapping.split(":")[-1] == mllp_env["CAREJOURNEY_MLLP_PORT"]
    assert Settings.model_fields["mllp_port"].default == 2575
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, one node
