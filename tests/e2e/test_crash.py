"""Kill -9 the aggregator mid-stream (in the process that owns chDB, or fold processes apart
and that owner); after a restart the counts are still exact."""
import uuid
from pathlib import Path

import httpx
import pytest

from dti.ranking.v1 import ranking_pb2
from dti_pulse.bootstrap import aggregation_layout
from tests.conftest import poll, ranking_stub, service_env, wait_for_port

pytestmark = pytest.mark.e2e
AGENCY = "000.00.03.H56"
BATCHES, PER_BATCH = 40, 250  # 10,000 dossiers, each received + accepted + resolved = 30,000 events


def dossier_events(n: int) -> list[dict]:
    dossier = f"CRASH-{n}"
    base = {"agency_code": AGENCY, "dossier_id": dossier}
    received = {**base, "event_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{dossier}/r")), "type": "dossier.received",
                "occurred_at": "2026-09-10T08:00:00+07:00", "procedure_code": "1.000002", "channel": 2,
                "service_level": "full_online", "received_at": "2026-09-10T08:00:00+07:00",
                "due_at": "2026-09-12T17:00:00+07:00"}
    accepted = {**base, "event_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{dossier}/a")), "type": "dossier.status",
                "occurred_at": "2026-09-10T09:00:00+07:00", "status": 2}
    # every third dossier is resolved late
    resolved_at = "2026-09-14T09:00:00+07:00" if n % 3 == 0 else "2026-09-11T09:00:00+07:00"
    resolved = {**base, "event_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{dossier}/9")), "type": "dossier.status",
                "occurred_at": resolved_at, "status": 9}
    return [resolved, received, accepted]


def on_time_indicator(stub):
    score = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=AGENCY, period="2026-09"))
    return {i.code: i for i in score.indicators}["dossier_on_time_rate"]


def test_counts_stay_exact_across_an_aggregator_crash(private_broker, topic_names, services, tmp_path):
    env = service_env(tmp_path, private_broker.bootstrap, *topic_names, DTI_AGGREGATOR_BATCH="500")
    processes = {}

    def start():
        processes["core"] = services("crash-core", ["serve", "aggregator,ranking"], env)
        return processes["core"]

    counts_stay_exact(env, services, start, crash=lambda: processes["core"].kill())


def test_counts_stay_exact_when_the_store_owner_and_a_fold_process_die(private_broker, topic_names, services,
                                                                      tmp_path):
    """Fold processes apart, as `up` runs them with DTI_AGGREGATOR_PROCESSES: kill -9 the
    process that owns chDB (their writes in flight are lost with it) and one of the two fold
    processes. With the owner back, the other fold process waits out the gap, takes the dead
    one's partitions, and the counts are exact."""
    env = service_env(tmp_path, private_broker.bootstrap, *topic_names, DTI_AGGREGATOR_BATCH="500")
    (_, owner_args), *fold_layout = aggregation_layout(2, data_dir=Path(env["DTI_DATA_DIR"]))
    processes = {}

    def start():
        if "folds" not in processes:
            processes["folds"] = [services(f"apart-fold-{index}", args, env)
                                  for index, (_, args) in enumerate(fold_layout)]
        processes["core"] = services("apart-core", owner_args, env)
        return processes["core"]

    def crash():
        processes["folds"][0].kill()
        processes["core"].kill()

    counts_stay_exact(env, services, start, crash)
    assert processes["folds"][1].process.poll() is None, processes["folds"][1].output()


def counts_stay_exact(env, services, start_core, crash):
    """Half the dossiers, a crash while they are being counted, the other half and a batch
    sent again; after the core's restart every dossier counts once."""
    ingest = services("crash-ingest", ["serve", "ingest"], env)
    core = start_core()
    http = httpx.Client(base_url=f"http://127.0.0.1:{env['DTI_HTTP_PORT']}",
                        headers={"Authorization": "Bearer test-token"}, timeout=30)
    poll(lambda: http.get("/readyz").status_code == 200 if ingest.process.poll() is None else pytest.fail(ingest.output()),
         timeout_s=60, what="ingest ready")
    wait_for_port("127.0.0.1", int(env["DTI_GRPC_PORT"]), timeout_s=60, process=core.process)
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))

    def post(batch_index: int) -> None:
        events = [e for n in range(batch_index * PER_BATCH, (batch_index + 1) * PER_BATCH) for e in dossier_events(n)]
        response = http.post("/v1/events", json={"events": events})
        assert response.status_code == 200 and response.json()["accepted"] == len(events), response.text

    for index in range(BATCHES // 2):
        post(index)
    # Crash while the aggregator is part-way through the stream.
    counted_at_kill = poll(lambda: on_time_indicator(stub).denominator, timeout_s=60,
                           what="the aggregator to start counting")
    crash()
    assert 0 < counted_at_kill < BATCHES * PER_BATCH
    for index in range(BATCHES // 2, BATCHES):
        post(index)
    # The bus retries a batch it already sent: duplicates must not count.
    post(3)

    core = start_core()
    wait_for_port("127.0.0.1", int(env["DTI_GRPC_PORT"]), timeout_s=60, process=core.process)
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    total = BATCHES * PER_BATCH
    late = len([n for n in range(total) if n % 3 == 0])
    indicator = poll(lambda: (i := on_time_indicator(stub)) and i.denominator >= total and i.numerator >= total - late
                     and i, timeout_s=120, what=f"{total} dossiers after the crash")
    assert (indicator.numerator, indicator.denominator) == (total - late, total)
    http.close()
