"""deploy/: every manifest parses and says what production needs; the image builds from what
the repository holds; dashboards and alerts name real metrics; the schema gate holds."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from service.cli import build_parser, main
from service.clickhouse import connect
from service.errors import ConfigError
from service.metrics import Metrics
from service.migrations import apply
from service.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
JSON_FILES = sorted(DEPLOY.rglob("*.json"))
SETTING_VARS = {f"TA_{name.upper()}" for name in Settings.model_fields}


def load_yaml(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def k8s_objects() -> list[dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s (kustomization.yaml is kustomize's config)."""
    docs = [doc for path in sorted(K8S.glob("*.yaml")) for doc in load_yaml(path)]
    return [doc for doc in docs if doc.get("kind") != "Kustomization"]


def k8s_object(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o
        for o in k8s_objects()
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# Every file parses.


def test_deploy_holds_the_expected_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()}
    assert {"Dockerfile", "compose.yaml", "prometheus/alerts.yaml"} <= names
    assert any(n.startswith("grafana/") and n.endswith(".json") for n in names)
    assert {"k8s/statefulset.yaml", "k8s/service.yaml", "k8s/migrate-job.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_file_parses_to_mappings(path: Path) -> None:
    docs = load_yaml(path)
    assert docs
    assert all(isinstance(doc, dict) for doc in docs)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


# Kubernetes.


def test_every_k8s_object_has_api_version_kind_and_name_and_no_namespace() -> None:
    objects = k8s_objects()
    assert {
        "ConfigMap",
        "Secret",
        "Job",
        "StatefulSet",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
    } <= {o["kind"] for o in objects}
    for obj in objects:
        assert obj["apiVersion"]
        assert obj["metadata"]["name"]
        assert "namespace" not in obj["metadata"], f"{obj['kind']} pins a namespace"


# The oldest Kubernetes the manifests target (the pod-index label) and the newest schema known.
K8S_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
CUSTOM_RESOURCES = {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_built_in_objects_match_the_kubernetes_schema_strictly(version: str) -> None:
    """Strict: an unknown field (a misspelt probe, say) is an error, not silently ignored."""
    checked = []
    for obj in k8s_objects():
        if obj["kind"] in CUSTOM_RESOURCES:
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked.append(obj["kind"])
    assert {"StatefulSet", "Job", "Service", "ConfigMap", "Secret"} <= set(checked)


def test_kustomization_lists_files_that_exist() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


def server_pod() -> dict[str, Any]:
    return dict(k8s_object("StatefulSet")["spec"]["template"])


def main_container() -> dict[str, Any]:
    containers = server_pod()["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_workload_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    container = main_container()
    port_names = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    assert {"containerPort": 8080, "name": "http"} in container["ports"]


def test_workload_runs_serve_as_non_root_on_a_read_only_root() -> None:
    pod = server_pod()["spec"]
    container = main_container()
    assert container["args"] == ["serve"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_each_pod_takes_its_shard_from_its_ordinal_and_the_count_from_replicas() -> None:
    statefulset = k8s_object("StatefulSet")
    env = {e["name"]: e for e in main_container()["env"]}
    field = env["TA_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert int(env["TA_SHARD_COUNT"]["value"]) == statefulset["spec"]["replicas"]


def test_pods_wait_for_the_schema_and_the_job_migrates_it() -> None:
    init = server_pod()["spec"]["initContainers"]
    assert any("trace-analytics migrate --status" in " ".join(c["command"]) for c in init)
    job = k8s_object("Job")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert [c["args"] for c in spec["containers"]] == [["migrate"]]
    images = {c["image"] for c in [*spec["containers"], *init, main_container()]}
    assert len(images) == 1, "the migrate Job, init container and server run one image"


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_services_select_the_server_pods_and_the_headless_one_names_them() -> None:
    statefulset = k8s_object("StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert labels_match(statefulset["spec"]["selector"]["matchLabels"], pod_labels)
    services = [o for o in k8s_objects() if o["kind"] == "Service"]
    for service in services:
        assert labels_match(service["spec"]["selector"], pod_labels)
        assert all(p["targetPort"] == "http" for p in service["spec"]["ports"])
    headless = k8s_object("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


def test_metrics_are_scraped_once_by_service_monitor_and_by_annotations() -> None:
    monitor = k8s_object("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [o for o in k8s_objects() if o["kind"] == "Service"]
    scraped = [s for s in services if labels_match(selector, s["metadata"]["labels"])]
    assert len(scraped) == 1, "one Service, or every pod is scraped twice"
    ports = {p["name"] for p in scraped[0]["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert ports == {"http"}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    annotations = server_pod()["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "8080"


# Configuration: every TA_* variable in deploy/ is a real setting with a valid value.


def env_settings(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], **overrides: object
) -> Settings:
    for name in [n for n in os.environ if n.startswith("TA_")]:
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_settings(**overrides)


def test_configmap_and_example_secret_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {**k8s_object("ConfigMap")["data"], **k8s_object("Secret")["stringData"]}
    assert set(data) <= SETTING_VARS, set(data) - SETTING_VARS
    assert "TA_SHARD_INDEX" not in data
    settings = env_settings(monkeypatch, data, shard_index=1, shard_count=2)
    assert not settings.embedded
    assert settings.api_key_map()
    assert settings.bind_host == "0.0.0.0"


@pytest.mark.parametrize(
    ("index", "count"),
    [("2", "2"), ("", "2")],
    ids=["ordinal beyond the shard count", "no pod-index label (Kubernetes < 1.28)"],
)
def test_a_pod_without_a_valid_shard_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, index: str, count: str
) -> None:
    with pytest.raises(ConfigError, match="TA_SHARD_INDEX") as caught:
        env_settings(monkeypatch, {"TA_SHARD_INDEX": index, "TA_SHARD_COUNT": count})
    assert "\n" not in str(caught.value)


def test_secrets_live_in_the_secret_not_the_configmap() -> None:
    secret_vars = {"TA_API_KEYS", "TA_WEBHOOK_SECRET", "TA_CLICKHOUSE_URL"}
    assert not secret_vars & set(k8s_object("ConfigMap")["data"])
    assert set(k8s_object("Secret")["stringData"]) == secret_vars
    values = " ".join(k8s_object("Secret")["stringData"].values())
    assert values.count("CHANGE_ME") >= 3, "the example Secret holds placeholders only"


def test_workload_env_names_are_real_settings() -> None:
    names = {e["name"] for e in main_container()["env"]}
    assert names <= SETTING_VARS


def compose() -> dict[str, Any]:
    return dict(load_yaml(DEPLOY / "compose.yaml")[0])


def test_compose_runs_clickhouse_then_migrate_then_the_app() -> None:
    services = compose()["services"]
    assert {"clickhouse", "migrate", "app"} <= set(services)
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["clickhouse"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["app"]["command"] == ["serve"]
    depends = services["app"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["clickhouse"]["condition"] == "service_healthy"


def test_compose_wires_the_app_by_environment() -> None:
    services = compose()["services"]
    for name in ("migrate", "app"):
        env = services[name]["environment"]
        assert set(env) <= SETTING_VARS, set(env) - SETTING_VARS
        assert env["TA_CLICKHOUSE_URL"].startswith("http://")
        assert "@clickhouse:8123/" in env["TA_CLICKHOUSE_URL"]
    app_env = services["app"]["environment"]
    # The app listens beyond loopback, which the service only allows with API keys.
    assert ":?" in app_env["TA_API_KEYS"], "TA_API_KEYS must be required, not defaulted"
    assert "TA_ANALYZE_URL" in app_env


def test_compose_builds_one_image_from_the_repository_root() -> None:
    services = compose()["services"]
    assert services["migrate"]["image"] == services["app"]["image"]
    for name in ("migrate", "app"):
        build = services[name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


# The Dockerfile: what it copies exists, and it runs the console script.


def dockerfile_instructions() -> list[tuple[str, str]]:
    """`(INSTRUCTION, arguments)` with line continuations joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        instruction, _, arguments = line.strip().partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile_instructions() if instruction == name]


def copy_sources() -> list[str]:
    sources = []
    for args in instructions("COPY"):
        parts = shlex.split(args)
        if any(p.startswith("--from") for p in parts):
            continue
        sources += [p for p in parts[:-1] if not p.startswith("--")]
    return sources


def test_dockerfile_copies_only_what_exists_in_the_build_context() -> None:
    sources = copy_sources()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository root"


def test_dockerfile_copies_everything_the_wheel_is_built_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= set(wheel["packages"]) | set(wheel["force-include"])
    copied = {source.rstrip("/") for source in copy_sources()}
    assert needed <= copied, needed - copied
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    ignored = {line.strip().strip("/") for line in lines if not line.startswith("#")}
    assert not needed & ignored


def test_a_wheel_built_from_only_the_copied_files_ships_queries_and_the_script(
    tmp_path: Path,
) -> None:
    """What the image's build stage does, on a context holding only the COPY sources."""
    context = tmp_path / "context"
    context.mkdir()
    for source in copy_sources():
        origin = ROOT / source
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, context / source, ignore=ignore)
        else:
            shutil.copy2(origin, context / source)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    built = subprocess.run(
        [*pip_wheel, "-q", "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheels").glob("trace_analytics-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    for migration in (ROOT / "queries" / "migrations").glob("*.sql"):
        assert f"service/queries/migrations/{migration.name}" in names
    assert "service/cli.py" in names
    assert "trace-analytics = service.cli:main" in scripts


def test_dockerfile_installs_the_wheel_not_an_editable_checkout() -> None:
    runs = " ".join(instructions("RUN"))
    assert "pip wheel" in runs
    assert "pip install" in runs
    assert "-e " not in runs
    assert "--editable" not in runs
    assert any(arg.startswith("PYTHON_IMAGE=python:3.11-slim") for arg in instructions("ARG"))
    assert all(base.split()[0] == "${PYTHON_IMAGE}" for base in instructions("FROM"))


def test_dockerfile_runs_the_console_script_as_a_non_root_user() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [entrypoint] = instructions("ENTRYPOINT")
    [cmd] = instructions("CMD")
    assert json.loads(entrypoint) == ["trace-analytics"]
    assert "trace-analytics" in project["project"]["scripts"]
    command = json.loads(cmd)
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    subcommands = subparsers.choices
    assert command == ["serve"]
    assert command[0] in subcommands
    [user] = instructions("USER")
    assert user.split(":")[0] not in ("0", "root")


def test_image_sets_no_bind_host_so_keys_decide_it() -> None:
    """TA_HOST unset: with TA_API_KEYS the service binds 0.0.0.0, without keys loopback."""
    env = " ".join(instructions("ENV"))
    assert "TA_HOST" not in env
    assert "TA_API_KEYS" not in env


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def readyz_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(port: int) -> int:
    [healthcheck] = instructions("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    env = {"TA_PORT": str(port), "PATH": ""}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True).returncode


def test_healthcheck_passes_on_ready_and_fails_on_503(readyz_server: HTTPServer) -> None:
    port = readyz_server.server_address[1]
    _Readyz.status = 200
    assert run_healthcheck(port) == 0
    _Readyz.status = 503
    try:
        assert run_healthcheck(port) != 0
    finally:
        _Readyz.status = 200


# Dashboards and alerts name metrics the service exports.

# Labels Prometheus attaches to every scraped series (and `le` on histogram buckets).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "le"}


def exported_metrics() -> dict[str, set[str]]:
    """`{sample name: label names}` for every metric in `Metrics`, with type suffixes."""
    metrics = Metrics(CollectorRegistry())
    names: dict[str, set[str]] = {}
    suffixes = {
        "counter": ["_total", "_created"],
        "gauge": [""],
        "histogram": ["_bucket", "_count", "_sum", "_created"],
        "summary": ["", "_count", "_sum", "_created"],
    }
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in suffixes[metric._type]:
                names[metric._name + suffix] = set(metric._labelnames)
    return names


def dashboard_expressions() -> list[str]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in JSON_FILES:
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(DEPLOY / "prometheus" / "alerts.yaml")[0]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def all_expressions() -> list[str]:
    return dashboard_expressions() + [rule["expr"] for rule in alert_rules()]


def test_every_metric_in_dashboards_and_alerts_is_exported() -> None:
    exported = exported_metrics()
    used: set[str] = set()
    for expr in all_expressions():
        text = re.sub(r'"[^"]*"', '""', expr)  # label values are not metric names
        text = re.sub(r"\[[^\]]*\]", "", text)  # nor are range durations
        used |= set(re.findall(r"\bta_[a-z0-9_]+\b", text))
    assert used, "no ta_* metric found: the parser is broken"
    assert used - set(exported) == set()


def test_every_label_in_dashboards_and_alerts_exists_on_its_metric() -> None:
    exported = exported_metrics()
    problems = []
    for expr in all_expressions():
        for metric, matchers in re.findall(r"\b(ta_[a-z0-9_]+)\{([^}]*)\}", expr):
            own = exported.get(metric, set())
            # A metric label named like a target label is stored as exported_<name>, and
            # the plain name then means the target's label: ambiguous, so refused.
            clashing = own & TARGET_LABELS
            allowed = (own | TARGET_LABELS) - clashing | {f"exported_{n}" for n in clashing}
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                if label not in allowed:
                    problems.append(f"{metric}{{{label}}} in {expr}")
        metrics_here = set(re.findall(r"\b(ta_[a-z0-9_]+)\b", expr))
        labels_here = set().union(*(exported.get(m, set()) for m in metrics_here))
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (g.strip() for g in grouping.split(",")):
                exported_ok = label.startswith("exported_") and label[9:] in labels_here
                if label not in labels_here | TARGET_LABELS and not exported_ok:
                    problems.append(f"by ({label}) in {expr}")
    assert problems == []


def test_alert_rules_are_complete_and_the_prometheus_rule_matches_them() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
    exprs = " ".join(rule["expr"] for rule in rules)
    for metric in ("ta_deliveries_dead", "ta_conclusion_detection_lag", "ta_rollup_lag_seconds"):
        assert metric in exprs, f"no alert on {metric}"
    assert "ta_schema_up_to_date" in exprs
    prometheus_rule = k8s_object("PrometheusRule")
    assert prometheus_rule["spec"] == load_yaml(DEPLOY / "prometheus" / "alerts.yaml")[0]


def test_dashboard_has_unique_panels_with_queries() -> None:
    for path in JSON_FILES:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["title"]
        assert dashboard["uid"]
        panels = dashboard["panels"]
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids))
        for panel in panels:
            assert panel["gridPos"]["w"] <= 24
            if panel["type"] != "row":
                assert panel["targets"], panel["title"]
                assert all(t["expr"] for t in panel["targets"])
        titles = " ".join(p["title"].lower() for p in panels)
        for topic in ("detection lag", "deliveries by outcome", "dead", "rollup lag", "latency"):
            assert topic in titles


# Deploy-time schema gate: a build never serves a schema it does not match.


def test_serve_refuses_a_database_ahead_of_the_build_with_one_line(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A rolled-back image against a newer schema: exit 2, one line, before binding a port."""
    ch = connect(settings)
    try:
        apply(ch)
        ch.insert(
            "schema_migrations",
            ["name", "checksum", "applied_at"],
            [["9999_from_a_newer_build", "x", datetime.now(UTC)]],
            by_column=False,
        )
    finally:
        ch.close()
    monkeypatch.setenv("TA_CLICKHOUSE_URL", settings.clickhouse_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["serve"]) == 2
        assert main(["migrate"]) == 2
        assert main(["migrate", "--status"]) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("trace-analytics:")]
    assert len(errors) == 2
    for line in errors:
        assert "9999_from_a_newer_build" in line
        assert "deploy the newer build" in line
    assert "UNKNOWN:  9999_from_a_newer_build" in captured.out


# The README's "Running in production" section stays in step with the code.


def production_section() -> str:
    """The README's "Running in production" section, up to the next top-level heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Running in production\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def test_production_doc_names_only_real_settings_and_the_build_command() -> None:
    text = production_section()
    named = set(re.findall(r"\bTA_[A-Z_]+\b", text))
    assert named - SETTING_VARS == set()
    # Built from the repository root: the context argument is the final `.`.
    assert re.search(r"^docker build -f deploy/Dockerfile .* \.$", text, re.M)
    assert "trace-analytics migrate" in text


def test_production_doc_names_existing_files_and_every_alert() -> None:
    text = production_section()
    paths = set(re.findall(r"\bdeploy/[\w./-]*\w", text))
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), path
    documented = set(re.findall(r"`(TraceAnalytics\w+)`", text))
    assert documented == {rule["alert"] for rule in alert_rules()}
