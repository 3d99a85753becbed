"""The multi-machine files, checked by the tools their users run: docker-compose (Debian's,
config only: no Docker engine runs here) and dclint on docker-compose.yml, promtool on the
Prometheus configuration and alert rules (with their own test cases), kubeconform on every
Kubernetes overlay. The tools come from `make tools` (DTI_TOOLS: where it put the npm and Go
ones)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("DTI_TOOLS", REPO / "build" / "tools"))


def tool(name: str, path: Path | None = None) -> str:
    found = str(path) if path and path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: `make tools` installs it")
    return found


def run(*args, cwd=REPO, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def compose_dir(tmp_path_factory) -> Path:
    """The compose file beside the secrets `deploy/make-secrets` writes, as a user would have them."""
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(REPO / "docker-compose.yml", work)
    shutil.copytree(REPO / "deploy", work / "deploy")
    run(sys.executable, "deploy/make-secrets", "--dir", str(work / "secrets"), cwd=work)
    return work


def test_docker_compose_resolves_the_file_with_ports_on_loopback(compose_dir):
    env = {k: v for k, v in os.environ.items() if k != "DTI_PUBLISH_HOST"}
    resolved = yaml.safe_load(run(tool("docker-compose"), "config", cwd=compose_dir, env=env).stdout)
    services = resolved["services"]
    published = [(name, port) for name, service in services.items() for port in service.get("ports", ())]
    assert {name for name, _ in published} == {"ingest", "ranking", "console", "prometheus", "grafana"}
    # docker-compose 1.29 writes a port as host_ip:published:target/protocol
    assert all(str(port).startswith("127.0.0.1:") for _, port in published), published
    # Every long-running service is checked for health and restarted.
    for name, service in services.items():
        if name != "migrate":
            assert "healthcheck" in service and service["restart"] == "unless-stopped", name


def test_dclint_finds_no_error():
    run(tool("dclint", TOOLS / "node_modules/.bin/dclint"), "docker-compose.yml")


def test_promtool_checks_the_configuration_and_the_alert_cases():
    promtool = tool("promtool")
    run(promtool, "check", "config", "deploy/prometheus/prometheus.yml")
    run(promtool, "test", "rules", "alerts.test.yml", cwd=REPO / "deploy/prometheus")


KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes the manifests are held to
OPERATOR_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser",  # checked below, against Strimzi's schemas
                  "ClickHouseInstallation", "ClickHouseKeeperInstallation"}  # no schema reachable here


def rendered(overlay: str, work: Path) -> tuple[Path, list[dict]]:
    """`kustomize build` of an overlay, with the secrets deploy/make-secrets writes."""
    copy = work / "k8s"
    if not copy.exists():
        shutil.copytree(REPO / "deploy/k8s", copy, ignore=shutil.ignore_patterns("secrets"))
    run(sys.executable, "deploy/make-secrets", "--dir", str(copy / "overlays" / overlay / "secrets"))
    manifest = work / f"{overlay}.yaml"
    manifest.write_text(run(tool("kustomize", TOOLS / "bin/kustomize"), "build", str(copy / "overlays" / overlay)).stdout)
    return manifest, [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]


def standalone_schemas(objects: list[dict], into: Path) -> Path:
    """kubeconform's schema layout (`<kind>-<group>-<version>.json`, standalone) for the kinds in
    `objects`, made from the Kubernetes JSON schemas kubernetes-validate ships (PyPI): their
    references into _definitions.json are carried into each file."""
    import kubernetes_validate

    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    # A kind's file refers to "/api/_definitions.json#/$defs/X"; the definitions, to "#/$defs/X".
    reference = re.compile(r'"(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')
    into.mkdir(exist_ok=True)
    for kind, api_version in {(o["kind"], o["apiVersion"]) for o in objects if o["kind"] not in OPERATOR_KINDS}:
        group, _, version = api_version.rpartition("/")
        name = f"{kind.lower()}-{group.split('.')[0] + '-' if group else ''}{version}.json"
        text = (source / name).read_text()
        needed, pending = set(), set(reference.findall(text))
        while pending:  # every definition the kind reaches, transitively
            definition = pending.pop()
            needed.add(definition)
            pending |= set(reference.findall(json.dumps(definitions[definition]))) - needed
        schema = json.loads(reference.sub(lambda m: f'"#/$defs/{m.group(1)}"', text))
        schema.pop("$id", None)
        schema["$defs"] = {d: definitions[d] for d in needed}
        (into / name).write_text(json.dumps(schema))
    return into


@pytest.mark.parametrize("overlay", ["single-node", "production"])
def test_kubeconform_accepts_every_kubernetes_object(overlay, tmp_path):
    manifest, objects = rendered(overlay, tmp_path)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Job",
            "Kafka", "KafkaTopic", "KafkaUser", "ClickHouseInstallation"} <= kinds
    schemas = standalone_schemas(objects, tmp_path / "schemas")
    result = run(tool("kubeconform", TOOLS / "bin/kubeconform"), "-strict", "-summary", "-output", "text",
                 "-schema-location", f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
                 "-skip", ",".join(sorted(OPERATOR_KINDS)), str(manifest))
    assert f"Valid: {len(objects) - sum(o['kind'] in OPERATOR_KINDS for o in objects)}" in result.stdout, result.stdout
    assert "Invalid: 0, Errors: 0" in result.stdout, result.stdout


def test_the_overlays_differ_where_production_needs_it(tmp_path):
    def by_kind(objects):
        found = {}
        for o in objects:
            found.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
        return found

    single = by_kind(rendered("single-node", tmp_path)[1])
    production = by_kind(rendered("production", tmp_path)[1])
    assert single["KafkaNodePool"]["brokers"]["spec"]["replicas"] == 1
    assert production["KafkaNodePool"]["brokers"]["spec"]["replicas"] == 3
    assert {t["spec"]["replicas"] for t in production["KafkaTopic"].values()} == {3}
    # The aggregator's group is sized to the events topic's partitions.
    partitions = production["KafkaTopic"]["dti-events"]["spec"]["partitions"]
    assert production["ConfigMap"]["dti-pulse"]["data"]["DTI_TOPIC_PARTITIONS"] == str(partitions)
    assert production["HorizontalPodAutoscaler"]["aggregator"]["spec"]["maxReplicas"] == partitions
    layout = production["ClickHouseInstallation"]["dti-pulse"]["spec"]["configuration"]["clusters"][0]["layout"]
    assert layout == {"shardsCount": 2, "replicasCount": 2}
    assert production["Job"]["migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == \
        ["migrate", "--cluster", "dti"]
    # No secret value is in the repository: the Secret is made from deploy/make-secrets' files.
    assert set(production["Secret"]["dti-pulse"]["data"]) >= {"ingest_tokens", "grpc_tokens", "clickhouse_password"}
    for deployment in production["Deployment"].values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert not any("value" in e and ("TOKEN" in e["name"] or "PASSWORD" in e["name"]) and
                           not e["name"].endswith("_FILE") for e in container.get("env", ()))
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", ["single-node", "production"])
def test_strimzi_resources_match_strimzis_schemas(overlay, tmp_path):
    """Kafka, KafkaNodePool, KafkaTopic and KafkaUser, through the validators
    @kubernetes-models/strimzi-kafka-operator (npm) generates from Strimzi's CRDs. (No schema
    of the Altinity operator's resources is published where this machine can fetch it:
    test_the_overlays_differ_where_production_needs_it checks what ours say.)"""
    _, objects = rendered(overlay, tmp_path)
    strimzi = [o for o in objects if o["apiVersion"].startswith("kafka.strimzi.io/")]
    assert len(strimzi) == 5
    result = run(tool("node"), str(REPO / "deploy/k8s/validate-strimzi.mjs"), str(TOOLS / "node_modules"),
                 input="\n".join(json.dumps(o) for o in strimzi))
    assert result.stdout.count("valid ") == 5 and "invalid" not in result.stdout, result.stdout
