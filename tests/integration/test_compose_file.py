"""The container stack: docker-compose.yml as Compose itself resolves it, plus the Dockerfile.

The checks run on the output of ``docker-compose config`` (Compose v1, the Debian
``docker-compose`` package; ``.ci/run`` installs it), so they see the file after Compose has
validated and normalised it. That output is YAML; it is parsed with PyYAML, which the project
already depends on through ``uvicorn[standard]``. Compose v1 has no ``config --format json``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVE = ["stocksync", "serve", "--host", "0.0.0.0", "--port", "8000"]
WORKER = ["stocksync", "worker", "--metrics-host", "0.0.0.0", "--metrics-port", "9109"]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
REDIS_URL = "redis://redis:6379/0"
DATABASE_URL = "postgresql+psycopg://stocksync:stocksync@postgres:5432/stocksync"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config()


@pytest.fixture(scope="module")
def cluster_config() -> dict[str, Any]:
    return compose_config("cluster")


def compose_config(*profiles: str) -> dict[str, Any]:
    """``docker-compose [--profile P] config``, parsed."""
    profile = [arg for name in profiles for arg in ("--profile", name)]
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "the docker-compose binary is not installed (apt-get install -y docker-compose); "
            "docker-compose.yml was not checked"
        )
    # Variables such as COMPOSE_FILE or COMPOSE_PROFILES would change what gets resolved.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    proc = subprocess.run(
        [binary, "--file", str(COMPOSE_FILE), "--project-directory", str(ROOT), *profile, "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    parsed = yaml.safe_load(proc.stdout)
    assert isinstance(parsed, dict), proc.stdout
    return parsed


def service(config: dict[str, Any], name: str) -> dict[str, Any]:
    services = config["services"]
    assert name in services, f"no service {name!r} in {sorted(services)}"
    result: dict[str, Any] = services[name]
    return result


def argv(value: str | list[str]) -> list[str]:
    """A command or healthcheck test as a list of arguments, whichever form the file used."""
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def option(args: list[str], name: str) -> str:
    """The value after ``name`` in ``args`` (``--appendfsync always``)."""
    assert args.count(name) == 1, f"{name} should appear exactly once in {args}"
    index = args.index(name)
    assert index + 1 < len(args), f"{name} has no value in {args}"
    return args[index + 1]


def mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Container path -> source, for the short (v1) and the long (v2) volume syntax."""
    result: dict[str, str] = {}
    for volume in svc.get("volumes", []):
        if isinstance(volume, str):
            source, target, *_ = volume.split(":")
        else:
            source, target = volume.get("source", ""), volume["target"]
        result[target] = source
    return result


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def published(svc: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(host ip, published, target) for each port, in the short or the long syntax."""
    result = set()
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            result.add(
                (port.get("host_ip", ""), str(port.get("published", "")), str(port["target"]))
            )
        else:
            *host, target = str(port).split("/")[0].rsplit(":", 2)
            ip, public = (host[0], host[1]) if len(host) == 2 else ("", host[0])
            result.add((ip, public, target))
    return result


def default_services(config: dict[str, Any]) -> set[str]:
    """The services `docker-compose up` starts: those of no profile."""
    return {name for name, svc in config["services"].items() if not svc.get("profiles")}


def test_services_are_the_engine_its_stores_and_its_monitoring(config: dict[str, Any]) -> None:
    assert default_services(config) == {
        "redis",
        "postgres",
        "api",
        "worker",
        "prometheus",
        "grafana",
    }


def test_redis_is_redis7_with_aof_fsynced_always(config: dict[str, Any]) -> None:
    redis = service(config, "redis")
    assert redis["image"] == "redis:7"
    args = argv(redis["command"])
    assert args[0] == "redis-server"
    assert option(args, "--appendonly") == "yes"
    assert option(args, "--appendfsync") == "always"


def test_redis_data_is_on_a_named_volume(config: dict[str, Any]) -> None:
    source = mounts(service(config, "redis")).get("/data")
    assert source, "redis /data (where the AOF lives) is not mounted"
    assert source in config.get("volumes", {}), f"{source!r} is not a named volume"


def test_redis_healthcheck_pings(config: dict[str, Any]) -> None:
    test = argv(service(config, "redis")["healthcheck"]["test"])
    assert test[0] in {"CMD", "CMD-SHELL"}
    assert "redis-cli" in " ".join(test[1:])
    assert "ping" in " ".join(test[1:])


def test_postgres_is_16_with_stocksync_credentials_and_volume(config: dict[str, Any]) -> None:
    postgres = service(config, "postgres")
    assert postgres["image"] == "postgres:16"
    env = environment(postgres)
    assert env["POSTGRES_DB"] == "stocksync"
    assert env["POSTGRES_USER"] == "stocksync"
    assert env["POSTGRES_PASSWORD"] == "stocksync"
    source = mounts(postgres).get("/var/lib/postgresql/data")
    assert source, "the postgres data directory is not mounted"
    assert source in config.get("volumes", {}), f"{source!r} is not a named volume"
    test = argv(postgres["healthcheck"]["test"])
    assert "pg_isready" in " ".join(test[1:])


def test_api_is_built_here_and_serves_on_all_interfaces(config: dict[str, Any]) -> None:
    api = service(config, "api")
    build = api["build"]
    assert Path(build["context"]).resolve() == ROOT
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert argv(api["command"]) == SERVE
    published = {(str(p.get("published")), str(p["target"])) for p in api["ports"]}
    assert ("8000", "8000") in published


def test_api_environment_points_at_the_compose_services(config: dict[str, Any]) -> None:
    env = environment(service(config, "api"))
    assert env["STOCKSYNC_REDIS_URL"] == REDIS_URL
    assert env["STOCKSYNC_DATABASE_URL"] == DATABASE_URL

    # The URLs must name services of this file, and the database URL the postgres credentials.
    redis_url = urlsplit(env["STOCKSYNC_REDIS_URL"])
    assert redis_url.hostname in config["services"]
    db_url = urlsplit(env["STOCKSYNC_DATABASE_URL"])
    assert db_url.hostname in config["services"]
    pg_env = environment(service(config, "postgres"))
    assert db_url.username == pg_env["POSTGRES_USER"]
    assert db_url.password == pg_env["POSTGRES_PASSWORD"]
    assert db_url.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_api_waits_for_healthy_redis_and_postgres(config: dict[str, Any]) -> None:
    depends_on = service(config, "api")["depends_on"]
    assert isinstance(depends_on, dict), "depends_on must use the long form with conditions"
    for name in ("redis", "postgres"):
        assert depends_on[name]["condition"] == "service_healthy"
        assert "healthcheck" in service(config, name), f"{name} has no healthcheck to wait for"


def test_api_healthcheck_fetches_healthz_with_python(config: dict[str, Any]) -> None:
    test = argv(service(config, "api")["healthcheck"]["test"])
    assert test[:3] == ["CMD", "python", "-c"], test
    code = test[3]
    assert "urllib" in code
    assert "/healthz" in code
    assert ":8000/" in code
    compile(code, "<api healthcheck>", "exec")  # a syntax error would fail every probe


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


def test_dockerfile_installs_the_project_on_python311_slim() -> None:
    instructions = dockerfile_instructions()
    froms = [args for instr, args in instructions if instr == "FROM"]
    assert froms == ["python:3.11-slim"]
    runs = [shlex.split(args) for instr, args in instructions if instr == "RUN"]
    assert any(args[:3] == ["pip", "install", "."] for args in runs), runs
    cmds = [args for instr, args in instructions if instr == "CMD"]
    assert len(cmds) == 1
    assert json.loads(cmds[0]) == SERVE


def test_dockerignore_keeps_secrets_and_virtualenvs_out_but_not_the_package() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env"} <= patterns
    for needed in ("pyproject.toml", "README.md", "stocksync", "connectors", "*", "."):
        assert needed not in patterns, f".dockerignore drops {needed!r}, which the build needs"


# -- the workers and the monitoring stack ------------------------------------------------------


def test_api_leaves_the_workers_to_the_worker_service(config: dict[str, Any]) -> None:
    api, worker = service(config, "api"), service(config, "worker")
    assert environment(api)["STOCKSYNC_RUN_WORKERS"] == "false"
    assert argv(worker["command"]) == WORKER
    env = environment(worker)
    assert env["STOCKSYNC_REDIS_URL"] == REDIS_URL
    assert env["STOCKSYNC_DATABASE_URL"] == DATABASE_URL
    assert env.get("STOCKSYNC_RUN_WORKERS", "true") != "false"
    assert worker["image"] == api["image"]
    assert Path(worker["build"]["context"]).resolve() == ROOT
    # After the API is healthy: it has migrated the database by then.
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"


def test_worker_healthcheck_fetches_its_metrics_port(config: dict[str, Any]) -> None:
    test = argv(service(config, "worker")["healthcheck"]["test"])
    assert test[:3] == ["CMD", "python", "-c"], test
    port = option(argv(service(config, "worker")["command"]), "--metrics-port")
    assert f"127.0.0.1:{port}/metrics" in test[3]
    compile(test[3], "<worker healthcheck>", "exec")


def prometheus_config(config: dict[str, Any]) -> dict[str, Any]:
    """The prometheus.yml the prometheus service reads, from the directory compose mounts."""
    prometheus = service(config, "prometheus")
    args = argv(prometheus["command"])
    config_file = Path(next(a for a in args if a.startswith("--config.file=")).split("=", 1)[1])
    source = mounts(prometheus).get(str(config_file.parent))
    assert source, f"{config_file.parent} is not mounted into prometheus"
    assert Path(source).resolve() == PROMETHEUS_DIR
    parsed: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / config_file.name).read_text())
    for rule_file in parsed["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file(), f"rule file {rule_file} is not mounted"
    return parsed


def scrape_targets(prom: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in prom["scrape_configs"]
    }


def test_prometheus_scrapes_the_api_and_the_worker_on_their_ports(config: dict[str, Any]) -> None:
    targets = scrape_targets(prometheus_config(config))
    api_port = option(argv(service(config, "api")["command"]), "--port")
    assert targets["stocksync-api"] == [f"api:{api_port}"]
    worker_args = argv(service(config, "worker")["command"])
    assert option(worker_args, "--metrics-host") == "0.0.0.0"  # reachable from prometheus
    assert targets["stocksync-worker"] == [f"worker:{option(worker_args, '--metrics-port')}"]
    for job, hosts in targets.items():
        for target in hosts:
            assert target.split(":")[0] in config["services"], f"{job}: {target}"


def test_prometheus_finds_connector_services_by_name(config: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config(config)["scrape_configs"]}
    (sd,) = jobs["stocksync-connectors"]["dns_sd_configs"]
    assert sd["type"] == "A"
    assert sd["port"] == 9108
    names = set(sd["names"])
    assert names == {"connector-square", "connector-warehouse", "connector-shopify"}


def test_prometheus_and_grafana_are_pinned_and_published_on_loopback(
    config: dict[str, Any],
) -> None:
    for name, port in (("prometheus", "9090"), ("grafana", "3000")):
        svc = service(config, name)
        tag = svc["image"].partition(":")[2]
        assert tag not in ("", "latest"), f"{name} image is not pinned: {svc['image']}"
        assert published(svc) == {("127.0.0.1", port, port)}, svc.get("ports")
        data = [target for target, source in mounts(svc).items() if source in config["volumes"]]
        assert data, f"{name} keeps its data on no named volume"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(
    config: dict[str, Any],
) -> None:
    grafana = service(config, "grafana")
    volumes = mounts(grafana)
    assert Path(volumes["/etc/grafana/provisioning"]).resolve() == GRAFANA_DIR / "provisioning"

    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    url = urlsplit(prometheus["url"])
    assert url.hostname == "prometheus"
    assert url.hostname in config["services"]
    assert str(url.port) == "9090"  # Prometheus's port inside the network

    provider = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "stocksync.yml").read_text()
    )["providers"][0]
    folder = provider["options"]["path"]
    assert folder in volumes, f"the dashboards folder {folder} is not mounted"
    dashboards = Path(volumes[folder]).resolve()
    assert (dashboards / "stocksync.json").is_file()
    home = Path(environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == folder
    assert (dashboards / home.name).is_file()


# -- the `cluster` profile ---------------------------------------------------------------------

VALKEY_NODES = [f"valkey-{n}" for n in range(1, 7)]


def test_the_cluster_profile_is_six_valkey_nodes_an_init_and_stocksync_on_them(
    cluster_config: dict[str, Any],
) -> None:
    services = cluster_config["services"]
    in_profile = {name for name, svc in services.items() if "cluster" in svc.get("profiles", [])}
    assert in_profile == {*VALKEY_NODES, "cluster-init", "api-cluster", "worker-cluster"}
    for name in VALKEY_NODES:
        node = service(cluster_config, name)
        assert node["image"].startswith("valkey/valkey:")
        command = " ".join(argv(node["command"]))
        assert "--cluster-enabled yes" in command
        assert "--appendfsync always" in command
        assert mounts(node).get("/data") in cluster_config["volumes"]
        assert node["hostname"] == name
    data = {mounts(service(cluster_config, name))["/data"] for name in VALKEY_NODES}
    assert len(data) == 6, "each node needs a data volume of its own"


def test_cluster_init_creates_three_primaries_with_a_replica_each_once(
    cluster_config: dict[str, Any],
) -> None:
    init = service(cluster_config, "cluster-init")
    script = argv(init["command"])[-1]
    assert "--cluster create" in script
    assert "--cluster-replicas 1" in script
    assert "--cluster-yes" in script
    assert "cluster_state:ok" in script  # an existing cluster is left alone
    for node in VALKEY_NODES:
        assert init["depends_on"][node]["condition"] == "service_healthy"
    assert str(init.get("restart", "no")) == "no"


def test_stocksync_on_the_cluster_names_one_seed_node_in_cluster_mode(
    cluster_config: dict[str, Any],
) -> None:
    for name in ("api-cluster", "worker-cluster"):
        env = environment(service(cluster_config, name))
        assert env["STOCKSYNC_REDIS_CLUSTER"] == "true"
        assert urlsplit(env["STOCKSYNC_REDIS_URL"]).hostname in VALKEY_NODES
        assert env["STOCKSYNC_DATABASE_URL"] == DATABASE_URL
    api = service(cluster_config, "api-cluster")
    assert api["depends_on"]["cluster-init"]["condition"] == "service_completed_successfully"
    assert ("", "8001", "8000") in published(api)  # beside the default stack's :8000
