"""Contracts between parts: generated code, schema columns, compose file."""

import pytest
import yaml

from dti_pulse.protogen import REPO_ROOT, generate
from dti_pulse.schema import PLACE_DAY_SQL, STATE_COLUMNS, column_names
from dti_pulse.state import DocumentSummary, DossierSummary, PetitionSummary, ProcedureSummary, PublicationSummary


def test_generated_code_is_up_to_date(tmp_path):
    generated = generate(tmp_path)
    assert generated, "protoc generated nothing"
    stale = []
    for path in generated:
        relative = path.relative_to(tmp_path)
        checked_in = REPO_ROOT / relative
        if not checked_in.exists() or checked_in.read_bytes() != path.read_bytes():
            stale.append(str(relative))
    assert not stale, f"generated code is out of date, run `make proto` and commit: {stale}"


def test_every_entity_family_has_a_state_table_with_its_summary_columns_in_order_and_measures():
    from dti_pulse.events import ENTITIES
    from services.ranking.measures import ROWS

    summaries = {"dossier": DossierSummary, "document": DocumentSummary, "petition": PetitionSummary,
                 "publication": PublicationSummary, "procedure": ProcedureSummary}
    assert set(ENTITIES) == set(summaries) == set(STATE_COLUMNS) == set(PLACE_DAY_SQL) == set(ROWS)
    for family, summary in summaries.items():
        assert column_names(STATE_COLUMNS[family]) == [*summary._fields, "events_blob"], family


def test_compose_runs_each_service_apart_with_kafka_and_clickhouse():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"kafka", "clickhouse", "ingest", "aggregator", "ranking", "console"} <= set(services)
    for name in ("ingest", "aggregator", "ranking", "console"):
        service = services[name]
        assert service["command"][:2] == ["serve", name]
        environment = service["environment"]
        if name == "console":  # talks to ranking only
            assert environment["DTI_RANKING_ADDRESS"] == "ranking:50051"
            continue
        assert "DTI_KAFKA_BOOTSTRAP" in environment or "<<" in environment
    # Migrations run once, before the services that use ClickHouse (one rebuilds tables).
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("aggregator", "ranking"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    clickhouse_image = services["clickhouse"]["image"]
    assert clickhouse_image.startswith("clickhouse/clickhouse-server:") and int(clickhouse_image.split(":")[1].split(".")[0]) >= 24
    # No secret in the compose file nor in a container's environment: each is a Docker secret
    # read through a *_FILE variable, and every secret a service names is mounted into it.
    from urllib.parse import urlsplit

    from dti_pulse.config import _SECRET_VARIABLES

    declared = compose["secrets"]
    for name, service in services.items():
        environment = service.get("environment", {})  # YAML merge keys (<<) already applied
        assert not set(environment) & _SECRET_VARIABLES - {"DTI_CLICKHOUSE_DSN"}, name
        assert urlsplit(environment.get("DTI_CLICKHOUSE_DSN", "")).password is None, name
        for variable, value in environment.items():
            if variable.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in service.get("secrets", []) and secret in declared, (name, variable)
    assert all(spec["file"].startswith("./secrets/") for spec in declared.values())
    # Published on loopback unless asked: no port of the stack is open to the network by default.
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port.startswith("${DTI_PUBLISH_HOST:-127.0.0.1}:") for port in published)


def test_make_secrets_writes_what_the_services_read(tmp_path):
    import subprocess
    import sys

    from dti_pulse.config import load_settings
    from services.console.auth import verify_password

    printed = subprocess.run([sys.executable, str(REPO_ROOT / "deploy" / "make-secrets"), "--dir", str(tmp_path)],
                             capture_output=True, text=True, check=True).stdout
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert {spec["file"].removeprefix("./secrets/") for spec in compose["secrets"].values()} == \
        {path.name for path in tmp_path.iterdir()}
    files = {f"DTI_{name}_FILE": str(tmp_path / secret) for name, secret in (
        ("CLICKHOUSE_PASSWORD", "clickhouse_password"), ("INGEST_TOKENS", "ingest_tokens"),
        ("GRPC_TOKENS", "grpc_tokens"), ("RANKING_TOKEN", "console_ranking_token"),
        ("CONSOLE_VIEWERS", "console_viewers"), ("CONSOLE_SECRET", "console_secret"),
        ("KAFKA_PASSWORD", "kafka_password"))}
    settings = load_settings({**files, "DTI_CLICKHOUSE_DSN": "http://dti@clickhouse:8123/default",
                              "DTI_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DTI_KAFKA_USERNAME": "dti"})
    assert settings.kafka_security.password and settings.kafka_security.client_options()["sasl_plain_username"] == "dti"
    assert settings.console.ranking_token in settings.ranking.tokens
    password = printed.split("password ")[1].split()[0]
    assert verify_password(password, settings.console.viewers["operator"])
    assert settings.clickhouse_password and settings.clickhouse_password in settings.effective_clickhouse_dsn
    with pytest.raises(subprocess.CalledProcessError):  # never overwrites secrets in use unasked
        subprocess.run([sys.executable, str(REPO_ROOT / "deploy" / "make-secrets"), "--dir", str(tmp_path)],
                       capture_output=True, check=True)


def test_every_measure_the_rules_may_name_has_one_sql_definition():
    from services.ranking.rules import MEASURES
    from services.ranking.measures import MEASURE_DEFINITIONS

    assert set(MEASURE_DEFINITIONS) == set(MEASURES)


def test_compose_runs_the_kafka_version_up_and_the_tests_run_with_its_log_on_the_volume():
    import re

    pinned = re.search(r"<kafka.version>([^<]+)</kafka.version>",
                       (REPO_ROOT / "deploy" / "kafka" / "pom.xml").read_text(encoding="utf-8"))[1]
    kafka = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{pinned}"
    assert any(volume.endswith(":" + kafka["environment"]["KAFKA_DATA"]) for volume in kafka["volumes"])


def test_the_image_installs_dependencies_before_the_code_and_gives_its_user_a_data_dir(tmp_path):
    import re
    import shutil
    import subprocess
    import sys

    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    steps = [line.split()[0] for line in dockerfile.splitlines() if re.match(r"^(RUN|COPY|ENV|USER) ", line)]
    service_stage = dockerfile[dockerfile.index("FROM python"):]
    assert service_stage.index("pip install --no-cache-dir -r") < service_stage.index("COPY dti_pulse")
    data_dir = re.search(r"DTI_DATA_DIR=(\S+)", service_stage)[1]
    assert f"chown dti {data_dir}" in service_stage and service_stage.rindex("USER dti") > service_stage.index("chown")
    assert "RUN" in steps and "USER" in steps
    # The dependency list the image installs is pyproject's, read the way the Dockerfile does.
    command = re.search(r'RUN (python -c "import tomllib.*?") \\', service_stage)[1]
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    listed = subprocess.run(command.replace("python ", f"{sys.executable} ", 1).replace("\\\\n", "\\n"), shell=True,
                            cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split("\n")
    assert "faust-streaming" in " ".join(listed) and "clickhouse-connect" in " ".join(listed)
    # A slim image: chDB (and the pandas and pyarrow it brings) is the `local` extra, not a dependency.
    assert not [name for name in listed if name.startswith(("chdb", "pandas", "pyarrow", "tansu"))], listed


def test_without_chdb_a_command_that_needs_clickhouse_says_what_to_set(monkeypatch, tmp_path, capsys):
    import importlib.util

    from dti_pulse import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "chdb" else real(name, *a))
    monkeypatch.setenv("DTI_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DTI_CLICKHOUSE_DSN", raising=False)
    assert cli.main(["migrate"]) == 2
    assert "DTI_CLICKHOUSE_DSN" in capsys.readouterr().err


def test_compose_restarts_limits_and_health_checks_every_long_running_service():
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "on-failure"), name
        if name == "migrate":
            continue
        assert service["deploy"]["resources"]["limits"]["memory"], name
        # The aggregator has no port: its progress is judged by ranking (dti.pipeline.aggregator).
        assert name == "aggregator" or service["healthcheck"]["test"], name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition["condition"] in ("service_healthy", "service_completed_successfully"), (name, dependency)
    assert services["ranking"]["healthcheck"]["test"] == ["CMD", "dti-pulse", "probe", "grpc", "localhost:50051"]


def test_the_cluster_schema_is_applied_statement_by_statement_for_the_named_cluster():
    import pytest

    from dti_pulse import cluster_schema

    class Recording:
        def __init__(self):
            self.commands = []

        def command(self, statement):
            self.commands.append(statement)

    client = Recording()
    count = cluster_schema.apply(client, "province-1")
    assert count == len(client.commands) > 8
    assert all("__CLUSTER__" not in c and not c.endswith(";") for c in client.commands)
    assert sum("ON CLUSTER 'province-1'" in c for c in client.commands) == count - 1  # all but the bookkeeping insert
    assert client.commands[-1].startswith("INSERT INTO schema_migrations")
    with pytest.raises(ValueError):
        cluster_schema.apply(client, "x'; DROP TABLE dossier_state; --")


def test_the_simulator_never_dates_an_event_after_now_and_mixes_as_the_province_does():
    from datetime import datetime, timedelta

    from dti_pulse.config import DEFAULT_AGENCIES
    from dti_pulse.localtime import LOCAL_TZ
    from dti_pulse.registry import load_registry
    from dti_pulse.simulator import BusSimulator

    registry = load_registry(DEFAULT_AGENCIES)
    now = datetime(2026, 11, 20, 10, 0, tzinfo=LOCAL_TZ)
    events = []
    for seed in range(20):
        events += BusSimulator(registry, seed=seed).batch(500, now=now)
    stamps = [datetime.fromisoformat(e[k]) for e in events for k in ("occurred_at", "received_at", "decided_at")
              if k in e]
    assert max(stamps) <= now
    assert min(stamps) > now - timedelta(days=11)
    kinds = [e["type"] for e in events]
    sent, received = kinds.count("document.sent"), kinds.count("document.received")
    assert 1.9 < received / sent < 2.5  # 2.39 M received for 1.07 M sent
    assert 0.7 < kinds.count("dossier.received") / sent < 1.3  # 917 k dossiers
    assert 0 < kinds.count("petition.received") < kinds.count("dossier.received") / 20  # petitions: far fewer
    assert 0 < kinds.count("procedure.listed") < kinds.count("dossier.received") / 100  # the catalogue changes slowly
    from services.ingest.validation import to_event
    for raw in events:
        if raw["type"] == "procedure.listed":  # every listing passes ingest
            to_event(raw, registry, "lgsp", 0, latest_ms=int(now.timestamp() * 1000))
