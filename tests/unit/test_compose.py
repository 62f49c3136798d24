"""Keep docker-compose.yml and the Dockerfile true to the CLI and Settings (no Docker needed)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from api.cli import build_parser
from api.routes.health import router as health_router
from models.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {"postgres", "redis", "migrate", "api", "worker", "predictor", "beat"}
APP_SERVICES = ("migrate", "api", "worker", "predictor", "beat")
PREFIX = "TUNEFORGE_"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source, for short-syntax (``src:dst[:mode]``) and long-syntax mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def test_compose_defines_the_seven_services(services: dict[str, dict[str, Any]]) -> None:
    """The stack is postgres, redis, migrate, api, worker, predictor and beat."""
    assert set(services) == SERVICES


def test_every_tuneforge_command_parses_with_the_cli(services: dict[str, dict[str, Any]]) -> None:
    """Each `tuneforge ...` command in the compose file is accepted by the real CLI parser."""
    parsed = {}
    for name, service in services.items():
        command = command_of(service)
        if not command or command[0] != "tuneforge":
            continue
        try:
            args = build_parser().parse_args(command[1:])
        except SystemExit as exc:
            pytest.fail(f"service {name!r}: `{shlex.join(command)}` is rejected (exit {exc.code})")
        parsed[name] = args.command
    assert parsed == {
        "migrate": "migrate",
        "api": "serve",
        "worker": "worker",
        "predictor": "worker",
        "beat": "beat",
    }


def test_tuneforge_variables_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    """Every TUNEFORGE_* variable the compose file names is a Settings field (no silent typo)."""
    named = set(re.findall(rf"\b{PREFIX}\w+", COMPOSE_FILE.read_text()))
    for service in services.values():
        named |= {key for key in environment_of(service) if key.startswith(PREFIX)}
    assert named, "the compose file configures tuneforge through TUNEFORGE_* variables"
    fields = set(Settings.model_fields)
    unknown = {var for var in named if var.removeprefix(PREFIX).lower() not in fields}
    assert not unknown, f"not fields of models.settings.Settings: {sorted(unknown)}"


def test_app_services_share_database_broker_and_data_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """api, worker, beat and migrate see the same settings and the same named volume at data_dir."""
    envs = {name: environment_of(services[name]) for name in APP_SERVICES}
    assert all(env == envs["api"] for env in envs.values()), envs
    settings = {key.removeprefix(PREFIX).lower(): value for key, value in envs["api"].items()}
    assert {"database_url", "broker_url", "data_dir"} <= set(settings)
    data_dir = settings["data_dir"]
    sources = {name: volume_mounts(services[name]).get(data_dir) for name in APP_SERVICES}
    assert len(set(sources.values())) == 1, f"{data_dir} must be one shared volume: {sources}"
    assert sources["api"] in (compose.get("volumes") or {}), "the data volume is a named volume"


def test_urls_point_at_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    """The database URL reaches the postgres service and the broker URL the redis service."""
    env = environment_of(services["api"])
    database = urlsplit(env[f"{PREFIX}DATABASE_URL"])
    broker = urlsplit(env[f"{PREFIX}BROKER_URL"])
    assert database.scheme.startswith("postgresql") and database.hostname == "postgres"
    assert broker.scheme == "redis" and broker.hostname == "redis"
    postgres = environment_of(services["postgres"])
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_worker_reserves_nvidia_gpus(services: dict[str, dict[str, Any]]) -> None:
    """The worker container is given the host's NVIDIA GPUs."""
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices


def test_migrate_runs_before_the_api(services: dict[str, dict[str, Any]]) -> None:
    """migrate runs `tuneforge migrate` after Postgres is healthy; the api waits for success."""
    assert command_of(services["migrate"]) == ["tuneforge", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    api_deps = services["api"]["depends_on"]
    assert api_deps["migrate"]["condition"] == "service_completed_successfully"
    assert api_deps["redis"]["condition"] == "service_healthy"


def test_healthy_conditions_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    """Every service another waits on as service_healthy defines a healthcheck."""
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        for dep, rule in deps.items() if isinstance(deps, dict) else []:
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s health"


def test_dockerfile_installs_the_worker_extra(services: dict[str, dict[str, Any]]) -> None:
    """The image installs the [worker] extra by default; the GPU worker adds the gpu extra."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG EXTRAS=worker$", text, re.MULTILINE), text
    assert re.search(r"^RUN\b.*\bpip install\b.*\.\[\$\{EXTRAS\}\]", text, re.MULTILINE), text
    extras = services["worker"]["build"]["args"]["EXTRAS"].split(",")
    assert {"worker", "gpu"} <= set(extras)
    declared = tomllib.loads((DOCKERFILE.parent / "pyproject.toml").read_text())
    assert set(extras) <= set(declared["project"]["optional-dependencies"])


def test_api_publishes_the_port_it_serves_on(services: dict[str, dict[str, Any]]) -> None:
    """The api's published container port and its healthcheck use the --port it serves on."""
    api = services["api"]
    port = build_parser().parse_args(command_of(api)[1:]).port
    published = {int(str(entry).split(":")[-1].split("/")[0]) for entry in api["ports"]}
    assert published == {port}
    probe = " ".join(map(str, api["healthcheck"]["test"]))
    assert f":{port}/healthz" in probe
    assert "/healthz" in {route.path for route in health_router.routes}


def test_predictor_serves_predictions_only(services: dict[str, dict[str, Any]]) -> None:
    """The predictor worker takes the predict role, so trainings never block predictions."""
    args = build_parser().parse_args(command_of(services["predictor"])[1:])
    assert args.role == "predict"
    assert build_parser().parse_args(command_of(services["worker"])[1:]).role == "train"


def test_redis_keeps_queued_messages_across_a_restart(services: dict[str, dict[str, Any]]) -> None:
    """The broker runs with AOF on a volume: a restart does not drop queued jobs' messages."""
    redis = services["redis"]
    command = command_of(redis)
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(volume).endswith(":/data") for volume in redis.get("volumes", []))


def test_long_running_services_restart_and_the_worker_outlives_its_hand_back(
    services: dict[str, dict[str, Any]],
) -> None:
    """Everything but the one-shot migration restarts; the worker's stop grace covers a hand-back."""
    for name, service in services.items():
        if name != "migrate":
            assert service.get("restart") == "unless-stopped", name
    grace = services["worker"]["stop_grace_period"]
    assert int(grace.rstrip("s")) >= 10
