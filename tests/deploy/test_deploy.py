"""What `kubernetes-validate`, `nginx -t` and `systemd-analyze verify` cannot see in deploy/: that
the production shape runs this code as scripts/stack.py runs it. Run by `make deploy-check` with
the gateway's Python (the Rasa side is asked through the engine's Python)."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.app import create_app  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.untrusted import MAX_BODY_BYTES  # noqa: E402
from deploy import endpoints  # noqa: E402
from scripts.stack import TICKET_LOCK_LIFETIME_S, Stack  # noqa: E402

K8S = ROOT / "deploy" / "k8s"
SYSTEMD = ROOT / "deploy" / "systemd"
SITE = ROOT / "deploy" / "nginx" / "site.conf"
ENGINE_PYTHON = ROOT / ".venv" / "engine" / "bin" / "python"
INSTALL = Path("/opt/assistant")  # where the systemd units expect the clone (README, Production)

# README "Configuration": values that are secrets, and so come only from the Secret by reference.
SECRETS = {
    "USER_ID_SECRET",
    "NLG_TOKEN",
    "RASA_TOKEN",
    "DATABASE_URL",
    "REDIS_URL",
    "TRACKER_STORE_URL",
    "LINE_CHANNEL_SECRET",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
}
# Whose development default must never reach production: each process that reads it gets it.
NEEDED = {
    "gateway": {"USER_ID_SECRET", "NLG_TOKEN", "DATABASE_URL", "REDIS_URL", "RASA_URL"},
    "endpoints": {*endpoints.REQUIRED, "DATABASE_URL", "REDIS_URL"},
    "rasa": {"RASA_TOKEN"},
    "migrate": {"DATABASE_URL"},
}
# Read by libraries rather than by this project's code.
LIBRARY_VARIABLES = {
    "SANIC_HOST",  # rasa_sdk's listening address
    "SANIC_KEEP_ALIVE_TIMEOUT",  # Sanic (Rasa and the action server)
    "RASA_TELEMETRY_ENABLED",
    "TF_CPP_MIN_LOG_LEVEL",
    "HOME",
    "PYTHONDONTWRITEBYTECODE",
    "TF_INTRA_OP_PARALLELISM_THREADS",  # TensorFlow (Rasa), as scripts/stack.py sets them
    "TF_INTER_OP_PARALLELISM_THREADS",
    "MALLOC_ARENA_MAX",  # glibc
    "TICKET_LOCK_LIFETIME",  # Rasa's lock store
}
READS = re.compile(
    r"""(?:_env\(|env\[|env\.get\(|environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def documents() -> Iterator[dict]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def pod(name: str) -> dict:
    """The pod spec of a Deployment or Job by its component name."""
    workloads = {**objects("Deployment"), **objects("Job")}
    return workloads[f"assistant-{name}"]["spec"]["template"]["spec"]


def container(name: str) -> dict:
    if name == "endpoints":
        return pod("rasa")["initContainers"][0]
    return next(c for c in pod(name)["containers"] if c["name"] == name)


def all_containers() -> Iterator[tuple[str, dict]]:
    for name, workload in {**objects("Deployment"), **objects("Job")}.items():
        spec = workload["spec"]["template"]["spec"]
        for each in spec.get("initContainers", []) + spec["containers"]:
            yield f"{name}/{each['name']}", each


def environment(each: dict) -> dict[str, dict]:
    """Every variable a container gets: its own entries, and the ConfigMap's keys it imports."""
    config = objects("ConfigMap")
    variables: dict[str, dict] = {}
    for source in each.get("envFrom", []):
        for key, value in config[source["configMapRef"]["name"]]["data"].items():
            variables[key] = {"name": key, "value": value}
    for entry in each.get("env", []):
        variables[entry["name"]] = entry
    return variables


def code_reads() -> set[str]:
    sources = [
        *(ROOT / "bot").rglob("*.py"),
        *(ROOT / "migrations").glob("*.py"),
        ROOT / "scripts" / "stack.py",
    ]
    found = {name for path in sources for name in READS.findall(path.read_text())}
    return found | set(endpoints.REQUIRED)


def units() -> dict[str, dict[str, list[str]]]:
    """Each unit file as {key: [values]} (systemd keys may repeat); sections are not needed."""
    parsed: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SYSTEMD.glob("assistant*")):
        if path.suffix not in (".service", ".target"):
            continue
        keys: dict[str, list[str]] = {}
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith(("#", "[")):
                key, value = line.split("=", 1)
                keys.setdefault(key, []).append(value)
        parsed[path.name] = keys
    return parsed


def started(parsed: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """The units assistant.target starts, each instance of a template (name@instance.service)
    with its `%i` replaced, as systemd expands it."""
    units_started = {}
    for name in " ".join(parsed["assistant.target"]["Wants"]).split():
        prefix, at, rest = name.partition("@")
        instance = rest.removesuffix(".service")
        unit = parsed[f"{prefix}@.service" if at else name]
        units_started[name] = {
            key: [value.replace("%i", instance) for value in values] for key, values in unit.items()
        }
    return units_started


def rasa_units(parsed: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """The Rasa servers the target starts, in its order."""
    return {n: unit for n, unit in started(parsed).items() if n.startswith("assistant-rasa@")}


def command(unit: dict[str, list[str]]) -> list[str]:
    return shlex.split(unit["ExecStart"][0])


def unit_environment(unit: dict[str, list[str]]) -> dict[str, str]:
    pairs = [p for line in unit.get("Environment", []) for p in shlex.split(line)]
    return dict(p.split("=", 1) for p in pairs)


def flags(args: list[str]) -> list[str]:
    """A command's shape after its program: subcommands, module and flags, without the values
    that differ between a stack on free ports and a production install (ports, paths, token)."""
    shape, skip = [], False
    for arg in args[1:]:
        if not skip:
            # One argument, so that a token beginning with "-" is not read as a flag.
            shape.append("--auth-token=" if arg.startswith("--auth-token=") else arg)
        skip = arg in ("-i", "-p", "--model", "--endpoints", "--credentials")
    return shape


def port_of(args: list[str]) -> int:
    return int(args[args.index("-p") + 1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    """`make run`'s stack: two Rasa servers, which the single-machine install runs too."""
    return Stack(var=tmp_path_factory.mktemp("stack"), extra_env={"RASA_SERVERS": "2"})


@pytest.fixture(scope="module")
def gateway_routes() -> set[str]:
    return {route.path for route in create_app().routes}


@pytest.fixture(scope="module")
def engine_side(tmp_path_factory) -> dict:
    """Rasa's and the action server's routes, and what Rasa reads from deploy/endpoints.py's file
    for the production variables (PostgreSQL, Redis, the Services' URLs, a $ in a password)."""
    if not ENGINE_PYTHON.exists():
        pytest.fail("the engine environment is missing: make engine")
    path = tmp_path_factory.mktemp("endpoints") / "endpoints.yml"
    env = {
        name: entry.get("value", "") for name, entry in environment(container("endpoints")).items()
    }
    env.update(
        NLG_TOKEN="tok$en",
        DATABASE_URL="postgresql://assistant:pa$$word@assistant-postgres:5432/assistant",
        REDIS_URL="redis://:secret@assistant-redis:6379/3",
    )
    endpoints.write(path, env)
    script = f"""
import json
import rasa.server, rasa_sdk.endpoint
from rasa.core.utils import AvailableEndpoints
read = AvailableEndpoints.read_endpoints({str(path)!r})
routes = lambda app: sorted({{"/" + r.path.lstrip("/") for r in app.router.routes}})
print(json.dumps({{
    "rasa": routes(rasa.server.create_app()),
    "actions": routes(rasa_sdk.endpoint.create_app("actions")),
    "action_url": read.action.url, "nlg_url": read.nlg.url, "nlg_token": read.nlg.token,
    "tracker": [read.tracker_store.type, read.tracker_store.url, read.tracker_store.kwargs],
    "lock": [read.lock_store.type, read.lock_store.url, read.lock_store.kwargs],
}}))
"""
    result = subprocess.run(
        [str(ENGINE_PYTHON), "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "env": env, "mode": path.stat()}


def test_each_process_has_a_deployment_an_autoscaler_and_a_disruption_budget():
    deployments = objects("Deployment")
    assert set(deployments) == {"assistant-gateway", "assistant-rasa", "assistant-actions"}
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in objects("HorizontalPodAutoscaler").values()
    }
    assert scaled == set(deployments)
    for hpa in objects("HorizontalPodAutoscaler").values():
        assert hpa["spec"]["minReplicas"] >= 2
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the count"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        budgets = [
            b
            for b in objects("PodDisruptionBudget").values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(budgets) == 1, name
        services = [
            s
            for s in objects("Service").values()
            if s["spec"].get("selector", {}).items() <= labels.items() and s["spec"].get("selector")
        ]
        assert len(services) == 1, name
        ports = {
            p["name"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        assert {p["targetPort"] for p in services[0]["spec"]["ports"]} <= ports


def test_commands_are_the_ones_scripts_stack_runs(stack):
    for name in ("rasa", "actions", "gateway"):
        assert flags(container(name)["command"]) == flags(stack.processes[name].args), name
    assert container("endpoints")["command"][-1] == "/run/rasa/endpoints.yml"
    rasa = container("rasa")["command"]
    assert rasa[rasa.index("--endpoints") + 1] == "/run/rasa/endpoints.yml"
    mounts = {m["mountPath"] for m in container("rasa")["volumeMounts"]}
    assert "/run/rasa" in mounts
    assert (ROOT / rasa[rasa.index("--credentials") + 1]).exists()
    assert container("migrate")["command"] == ["alembic", "upgrade", "head"]


def test_every_variable_set_is_one_the_code_reads():
    read = code_reads() | LIBRARY_VARIABLES
    for where, each in all_containers():
        unknown = set(environment(each)) - read
        assert not unknown, f"{where} sets variables nothing reads: {sorted(unknown)}"
    for name, unit in units().items():
        unknown = set(unit_environment(unit)) - read
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
    example = SYSTEMD / "assistant.env.example"
    keys = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert keys - read == set()


def test_secrets_come_by_reference_and_every_process_gets_what_it_must_not_default():
    config = objects("ConfigMap")["assistant-config"]["data"]
    assert not SECRETS & set(config), "a secret in the ConfigMap"
    example = objects("Secret")["assistant-secrets"]["stringData"]
    for where, each in all_containers():
        for name, entry in environment(each).items():
            if name in SECRETS:
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                assert reference, f"{where}: {name} is not taken from the Secret"
                assert reference["name"] == "assistant-secrets" and reference["key"] == name
                assert name in example or reference.get("optional"), f"{name} not in the example"
    for name, needed in NEEDED.items():
        given = {
            key
            for key, entry in environment(container(name)).items()
            if not entry.get("valueFrom", {}).get("secretKeyRef", {}).get("optional")
        }
        assert needed <= given, f"{name} lacks {sorted(needed - given)}"


def test_probes_are_real_routes_and_liveness_survives_a_rasa_outage(gateway_routes, engine_side):
    gateway = container("gateway")
    # /healthz is 503 while the bot cannot give real answers; the fail-safe must keep answering,
    # so neither probe may take a gateway out for that.
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/livez" in gateway_routes
    live = gateway["livenessProbe"]
    assert "tcpSocket" in live or live["httpGet"]["path"] in gateway_routes - {"/healthz"}
    served = {"rasa": set(engine_side["rasa"]), "actions": set(engine_side["actions"])}
    for name, routes in served.items():
        for probe in ("readinessProbe", "livenessProbe"):
            assert container(name)[probe]["httpGet"]["path"] in routes, (name, probe)
    assert container("rasa")["startupProbe"]["httpGet"]["path"] in served["rasa"]
    for _, each in all_containers():
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in each:
                handler = each[probe].get("httpGet") or each[probe]["tcpSocket"]
                port = handler["port"]
                assert port in {p["name"] for p in each["ports"]}


def test_urls_between_processes_reach_their_routes(gateway_routes, engine_side):
    config = objects("ConfigMap")["assistant-config"]["data"]
    services = objects("Service")
    targets = {
        "RASA_URL": ("rasa", set(engine_side["rasa"]) | {""}),
        "ACTION_ENDPOINT_URL": ("actions", set(engine_side["actions"])),
        "NLG_URL": ("gateway", gateway_routes),
    }
    for variable, (name, routes) in targets.items():
        url = urlsplit(config[variable])
        assert url.hostname == f"assistant-{name}", variable
        service_ports = {
            p["port"]: p["targetPort"] for p in services[url.hostname]["spec"]["ports"]
        }
        assert url.port in service_ports, variable
        named = {p["name"]: p["containerPort"] for p in container(name)["ports"]}
        listening = (
            port_of(container(name)["command"])
            if "-p" in container(name)["command"]
            else int(environment(container("gateway"))["GATEWAY_PORT"]["value"])
        )
        assert named[service_ports[url.port]] == listening, variable
        assert url.path in routes, variable


def test_rasa_reads_the_generated_endpoints_as_the_production_stores(engine_side):
    env = engine_side["env"]
    assert engine_side["action_url"] == env["ACTION_ENDPOINT_URL"]
    assert engine_side["nlg_url"] == env["NLG_URL"]
    assert engine_side["nlg_token"] == "tok$en"
    kind, host, options = engine_side["tracker"]
    assert (kind, host) == ("SQL", "assistant-postgres")
    assert options["dialect"] == "postgresql" and options["password"] == "pa$$word"
    assert options["db"] == "assistant" and options["port"] == 5432
    assert engine_side["lock"] == [
        "redis",
        "assistant-redis",
        {"port": 6379, "db": 3, "password": "secret"},
    ]
    assert engine_side["mode"].st_mode & 0o077 == 0


def test_generator_puts_a_sqlite_tracker_store_in_wal_mode(tmp_path):
    """Two Rasa servers share it on one machine: one's reads must not wait for the other's
    writes (the Rasa unit's ExecStartPre, as scripts/stack.py before its Rasa servers start)."""
    database = tmp_path / "var" / "rasa_tracker.db"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TRACKER_STORE_URL")},
        "ACTION_ENDPOINT_URL": "http://127.0.0.1:5055/webhook",
        "NLG_URL": "http://127.0.0.1:8000/nlg",
        "NLG_TOKEN": "token",
        "TRACKER_DB": str(database),
    }
    path = tmp_path / "endpoints.yml"
    result = subprocess.run(
        [str(ENGINE_PYTHON), "-m", "deploy.endpoints", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert yaml.safe_load(path.read_text())["tracker_store"]["db"] == str(database)
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_rasa_locks_of_a_dead_server_expire_within_a_few_turns():
    """Rasa's default lock lifetime (60 s) would keep a killed server's children from the other
    servers sharing Redis for a minute of fail-safes; each child's turns come one at a time."""
    timeout = float(objects("ConfigMap")["assistant-config"]["data"]["RASA_TIMEOUT_S"])
    lifetimes = {
        "k8s": environment(container("rasa"))["TICKET_LOCK_LIFETIME"]["value"],
        "systemd": unit_environment(units()["assistant-rasa@.service"])["TICKET_LOCK_LIFETIME"],
    }
    for where, lifetime in lifetimes.items():
        assert timeout < int(lifetime) < 60, where
        assert int(lifetime) == TICKET_LOCK_LIFETIME_S, where  # as `make run` starts them


def test_generator_refuses_to_run_without_its_neighbours_addresses():
    with pytest.raises(ValueError, match="NLG_URL"):
        endpoints.endpoints({"ACTION_ENDPOINT_URL": "http://a:5055/webhook", "NLG_TOKEN": "t"})


def test_pods_run_locked_down_with_sized_resources():
    for name, workload in {**objects("Deployment"), **objects("Job")}.items():
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for each in spec.get("initContainers", []) + spec["containers"]:
            context = each["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(each["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(each["resources"]["limits"]), name
            assert {m["name"] for m in each["volumeMounts"]} <= writable, name
    for name in ("gateway", "rasa", "actions"):
        assert "/tmp" in {m["mountPath"] for m in container(name)["volumeMounts"]}, name
    # README "Benchmarks": Rasa is about 1 GB resident under load and saturates about one core.
    rasa = container("rasa")["resources"]
    assert rasa["requests"]["cpu"] == "1" and rasa["requests"]["memory"].endswith("Mi")
    assert int(rasa["requests"]["memory"][:-2]) >= 1024


def test_body_limit_is_the_gateways_everywhere():
    ingress = objects("Ingress")["assistant"]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "1m"
    assert re.search(r"client_max_body_size 1m;", SITE.read_text())
    assert MAX_BODY_BYTES == 1024 * 1024
    assert ingress["spec"]["tls"][0]["hosts"] == [r["host"] for r in ingress["spec"]["rules"]]


def test_systemd_units_restart_and_start_together(stack):
    parsed = units()
    wanted = set(started(parsed))
    rasa = [command(unit) for unit in rasa_units(parsed).values()]
    parsed.pop("assistant.target")
    # Every unit file is started, a template as instances of it.
    assert {re.sub(r"@[^.]*\.", "@.", name) for name in wanted} == set(parsed)
    for name, unit in parsed.items():
        assert unit["WantedBy"] == ["assistant.target"] and unit["PartOf"] == ["assistant.target"]
        assert unit["StartLimitIntervalSec"] == ["0"], f"{name} must never give up restarting"
        restart = "on-failure" if unit["Type"] == ["oneshot"] else "always"
        assert unit["Restart"] == [restart], name
        assert 0 < float(unit["RestartSec"][0]) <= 5, name
        assert unit["User"] == ["assistant"] and unit["ProtectSystem"] == ["strict"], name
        for line in unit.get("ExecStart", []) + unit.get("ExecStartPre", []):
            program = Path(line.split()[0])
            # The units run the environments `make setup` builds (ROOT/.venv/..., Makefile).
            assert (ROOT / program.relative_to(INSTALL)).exists(), line
    for process in ("actions", "gateway"):
        args = command(parsed[f"assistant-{process}.service"])
        assert flags(args) == flags(stack.processes[process].args), process
    # `make run`'s Rasa servers, on the same ports, with the same variables of their own.
    assert [port_of(args) for args in rasa] == stack.rasa_ports
    environment_of_rasa = unit_environment(parsed["assistant-rasa@.service"])
    for process, args in zip(stack.rasa_names, rasa, strict=True):
        assert flags(args) == flags(stack.processes[process].args), process
        assert stack.processes[process].defaults.items() <= environment_of_rasa.items(), process


def test_single_machine_addresses_agree(monkeypatch):
    parsed = units()
    gateway = unit_environment(parsed["assistant-gateway.service"])
    rasa = unit_environment(parsed["assistant-rasa@.service"])
    actions_args = command(parsed["assistant-actions.service"])
    # The gateway shares the children out between exactly the Rasa servers the target starts.
    monkeypatch.setenv("RASA_URL", gateway["RASA_URL"])
    servers = [urlsplit(url) for url in Settings.from_env().rasa_urls]
    rasa_servers = [command(unit) for unit in rasa_units(parsed).values()]
    assert len(rasa_servers) >= 2
    assert sorted((url.hostname, url.port) for url in servers) == sorted(
        (args[args.index("-i") + 1], port_of(args)) for args in rasa_servers
    )
    assert urlsplit(rasa["NLG_URL"]).port == int(gateway["GATEWAY_PORT"])
    assert urlsplit(rasa["ACTION_ENDPOINT_URL"]).port == port_of(actions_args)
    assert rasa["TRACKER_DB"] == gateway["TRACKER_DB"]  # the gateway purges Rasa's words there
    # Each server writes its own endpoints file at its start, and reads that one.
    written = set()
    for name, unit in rasa_units(parsed).items():
        args = command(unit)
        endpoints_file = Path(unit["ExecStartPre"][0].split()[-1])
        assert INSTALL / args[args.index("--endpoints") + 1] == endpoints_file, name
        written.add(endpoints_file)
    assert len(written) == len(rasa_servers)
    upstream = re.search(r"upstream \w+ \{\s*server ([\d.]+):(\d+);", SITE.read_text())
    assert upstream and (upstream[1], int(upstream[2])) == (
        gateway["GATEWAY_HOST"],
        int(gateway["GATEWAY_PORT"]),
    )


def test_images_copy_what_the_processes_run():
    for image in ("engine", "gateway"):
        dockerfile = (ROOT / "deploy" / f"{image}.Dockerfile").read_text()
        assert f"requirements/{image}.lock" in dockerfile
        assert f".venv/{image}" in dockerfile  # the Makefile's layout, which scripts/stack.py uses
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
            for source in line.split()[:-1]:
                assert (ROOT / source).exists(), f"{image}.Dockerfile copies a missing {source}"
    engine = (ROOT / "deploy" / "engine.Dockerfile").read_text()
    for needed in ("actions", "components", "scripts", "deploy/endpoints.py", "credentials.yml"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", engine, re.M), needed
    gateway = (ROOT / "deploy" / "gateway.Dockerfile").read_text()
    for needed in ("bot", "locales", "migrations", "alembic.ini"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", gateway, re.M), needed
