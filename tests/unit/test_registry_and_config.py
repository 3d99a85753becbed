from datetime import date
from pathlib import Path

import pytest

from dti_pulse.config import DEFAULT_AGENCIES, ConfigError, load_settings, parse_tokens, settings_to_env
from dti_pulse.registry import RegistryError, load_registry


def test_shipped_registry_has_the_province_its_departments_and_historical_districts():
    registry = load_registry(DEFAULT_AGENCIES)
    kinds = [a.kind for a in registry.all()]
    assert kinds.count("province") == 1
    assert kinds.count("department") == 20
    assert kinds.count("district") == 27
    assert all(a.valid_to == date(2025, 6, 30) for a in registry.all() if a.kind == "district")
    assert len(registry.cohort("district", date(2026, 1, 1), date(2026, 12, 31))) == 0
    assert len(registry.cohort("district", date(2025, 1, 1), date(2025, 12, 31))) == 27
    assert registry.get("000.00.00.H56").name == "Ủy ban nhân dân tỉnh Thanh Hóa"


@pytest.mark.parametrize("content, message", [
    ("code,name\n", ":1: header must be"),
    ("code,name,kind,parent,valid_from,valid_to\nA,Agency,ministry,,2020-01-01,\n", ":2: kind 'ministry'"),
    ("code,name,kind,parent,valid_from,valid_to\nA,Agency,commune,,2020-13-01,\n", ":2: bad date"),
    ("code,name,kind,parent,valid_from,valid_to\nA,X,commune,,2020-01-01,\nA,Y,commune,,2020-01-01,\n", ":3: duplicate code"),
])
def test_malformed_registry_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "agencies.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RegistryError, match=message):
        load_registry(path)


def test_tokens_map_token_to_source():
    assert parse_tokens("lgsp=abc, portal=def") == {"abc": "lgsp", "def": "portal"}
    with pytest.raises(ConfigError, match="expected name=token"):
        parse_tokens("lgsp")
    with pytest.raises(ConfigError, match="DTI_INGEST_TOKENS"):
        load_settings({"DTI_INGEST_TOKENS": "lgsp"})


def test_settings_round_trip_through_the_environment():
    settings = load_settings({"DTI_KAFKA_BOOTSTRAP": "k:9092", "DTI_HTTP_PORT": "9000", "DTI_INGEST_TOKENS": "a=b"})
    assert settings.kafka_bootstrap == "k:9092" and settings.ingest.port == 9000
    assert load_settings(settings_to_env(settings)) == settings
    with pytest.raises(ConfigError, match="DTI_HTTP_PORT"):
        load_settings({"DTI_HTTP_PORT": "eighty"})


def test_settings_are_grouped_per_service_with_the_tuning_knobs_apart():
    settings = load_settings({"DTI_GRPC_PORT": "6000", "DTI_CONSOLE_TOKENS": "wall=t", "DTI_AGGREGATOR_BATCH": "7",
                              "DTI_RANKING_CACHE": "off", "DTI_DATA_DIR": "/srv/dti"})
    assert (settings.ranking.port, settings.console.tokens, settings.data_dir) == (6000, {"t": "wall"}, Path("/srv/dti"))
    assert (settings.tuning.aggregator_batch, settings.tuning.ranking_cache) == (7, False)
    assert settings.effective_ranking_address == "127.0.0.1:6000"
    changed = settings.with_overrides(ingest={"port": 9001, "host": None}, data_dir=None)
    assert (changed.ingest.port, changed.ingest.host, changed.data_dir) == (9001, "127.0.0.1", Path("/srv/dti"))
    assert changed.ranking == settings.ranking and changed.tuning == settings.tuning


def test_gc_tuning_freezes_start_up_raises_the_young_threshold_and_zero_keeps_pythons_default():
    import gc

    from dti_pulse.bootstrap import tune_gc
    from dti_pulse.config import load_settings

    before = gc.get_threshold()
    try:
        assert load_settings({"DTI_GC_YOUNG_THRESHOLD": "0"}).tuning.gc_young_threshold == 0
        tune_gc(0)
        assert gc.get_threshold() == before and gc.get_freeze_count() > 0
        tune_gc(load_settings({}).tuning.gc_young_threshold)
        assert gc.get_threshold() == (10_000, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_any_variable_can_come_from_a_file_and_a_password_stays_out_of_the_dsn(tmp_path):
    tokens = tmp_path / "grpc-tokens"
    tokens.write_text("console=from-a-file\n")
    password = tmp_path / "clickhouse-password"
    password.write_text("p@ss:w/rd\n")
    settings = load_settings({"DTI_GRPC_TOKENS_FILE": str(tokens), "DTI_CLICKHOUSE_PASSWORD_FILE": str(password),
                              "DTI_CLICKHOUSE_DSN": "http://dti@clickhouse:8123/dti"})
    assert settings.ranking.tokens == {"from-a-file": "console"}
    assert settings.effective_clickhouse_dsn == "http://dti:p%40ss%3Aw%2Frd@clickhouse:8123/dti"
    assert "p%40ss" not in settings.shown_clickhouse_dsn and "clickhouse:8123" in settings.shown_clickhouse_dsn
    from urllib.parse import unquote, urlsplit

    assert unquote(urlsplit(settings.effective_clickhouse_dsn).password) == "p@ss:w/rd"
    with pytest.raises(ConfigError, match="not both"):
        load_settings({"DTI_GRPC_TOKENS": "a=b", "DTI_GRPC_TOKENS_FILE": str(tokens)})
    with pytest.raises(ConfigError, match="DTI_CONSOLE_SECRET_FILE"):
        load_settings({"DTI_CONSOLE_SECRET_FILE": str(tmp_path / "missing")})
    # chDB has no password: its DSN is left as it is.
    assert load_settings({"DTI_CLICKHOUSE_PASSWORD": "x"}).effective_clickhouse_dsn.startswith("chdb://")


def test_json_logs_are_one_object_a_line(tmp_path):
    import json
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "DTI_LOG_FORMAT": "json", "DTI_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'chdb'}"}
    run = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "migrate"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    applied = [line for line in lines if line["message"].startswith("applied ClickHouse migration")]
    assert applied and all(set(line) >= {"at", "level", "logger", "message"} for line in lines)
    assert applied[0]["level"] == "INFO" and applied[0]["logger"] == "dti_pulse.schema"
    with pytest.raises(ConfigError, match="DTI_LOG_FORMAT"):
        load_settings({"DTI_LOG_FORMAT": "xml"})


def test_the_province_is_the_parent_of_every_scored_agency_valid_in_a_period():
    from datetime import date

    from dti_pulse.config import DEFAULT_AGENCIES
    from dti_pulse.registry import COHORTS, load_registry

    registry = load_registry(DEFAULT_AGENCIES)
    province = next(a for a in registry.all() if a.kind == "province")
    assert registry.has_members(province.code) and not registry.has_members("000.00.05.H56")
    for first, last in ((date(2025, 1, 1), date(2025, 12, 31)), (date(2026, 11, 1), date(2026, 11, 30))):
        expected = {a.code for kind in COHORTS for a in registry.cohort(kind, first, last)}
        assert {a.code for a in registry.members(province.code, first, last)} == expected
    assert len(registry.members(province.code, date(2026, 11, 1), date(2026, 11, 30))) == 15 + 166  # no districts, 5 merged
