"""The alert loop on ranking over chDB (the October scenario): an alert fires once, by a real
SMTP server (aiosmtpd) and a webhook that fails its first POST (the notice is sent again at
the next round), shows in ListAlerts, and recovers once, with a notice of its own; across
restarts, with its records in ClickHouse, it neither notifies again nor forgets a notice owed."""
import json
import threading
from datetime import datetime
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dti.ranking.v1 import ranking_pb2
from dti_pulse.broker import free_port
from dti_pulse.config import DEFAULT_AGENCIES, DEFAULT_RULES_DIR
from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import load_registry
from services.ranking.alerting import AlertLoop, MailNotifier, WebhookNotifier
from services.ranking.alerts import AlertRule
from services.ranking.cache import CachedMeasures
from services.ranking.grpc_server import RankingServer
from services.ranking.rules import RulesCatalog
from services.ranking.service import RankingService
from services.ranking.store import ClickHouseAlertRecords, ClickHouseMeasures
from tests import scenario
from tests.conftest import GRPC_TOKEN, fold, ranking_stub


def subject(mail) -> str:
    return str(make_header(decode_header(mail["Subject"])))


class Webhook(BaseHTTPRequestHandler):
    received: list = []
    fail_next = 1  # the first POST is answered 500: the loop must send it again

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Webhook.fail_next:
            Webhook.fail_next -= 1
            self.send_response(500)
        else:
            Webhook.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receivers():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails = []

    class Keep(Message):
        def handle_message(self, message):
            mails.append(message)

    smtp = Controller(Keep(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    Webhook.received, Webhook.fail_next = [], 1
    http = HTTPServer(("127.0.0.1", free_port()), Webhook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield smtp, f"http://127.0.0.1:{http.server_port}/alerts", mails
    http.shutdown()
    smtp.stop()


def test_an_alert_fires_once_is_listed_and_recovers_once(clean_chdb, receivers):
    smtp, webhook_url, mails = receivers
    fold(clean_chdb, scenario.EVENTS)
    october = int(datetime(2026, 10, 20, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)
    clock = {"ms": october}
    service = RankingService(load_registry(DEFAULT_AGENCIES), RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0),
                             scenario.RULES_VERSION, CachedMeasures(ClickHouseMeasures(clean_chdb)),
                             clock_ms=lambda: clock["ms"])
    rule = AlertRule(name="dossiers-late", kind="below", indicator="dossier_on_time_rate", threshold=0.9,
                     min_denominator=5, severity="critical")
    notifiers = [WebhookNotifier(webhook_url), MailNotifier(smtp.hostname, smtp.port, "dti-pulse@tinh.gov.vn",
                                                            ["trungtam@tinh.gov.vn"])]
    loop = AlertLoop(service, [rule], notifiers, interval_s=3600, clock_ms=lambda: clock["ms"])
    server = RankingServer(service, "127.0.0.1", free_port(), {GRPC_TOKEN: "test"}, alerts=loop)
    server.start_in_thread()
    try:
        stub = ranking_stub(server.port)
        assert not stub.ListAlerts(ranking_pb2.ListAlertsRequest()).HasField("evaluated_at")

        fired, recovered = loop.evaluate()
        # 3 of 5 dossiers on time (60 %): the scenario's agency, and no other (none has 5 dossiers).
        assert [(a.agency_code, a.value) for a in fired] == [(scenario.AGENCY, pytest.approx(0.6))] and not recovered
        listed = stub.ListAlerts(ranking_pb2.ListAlertsRequest())
        assert [(a.rule, a.severity, a.agency_code) for a in listed.alerts] == [("dossiers-late", "critical",
                                                                                 scenario.AGENCY)]
        assert listed.alerts[0].since.ToMilliseconds() == october and "60.0%" in listed.alerts[0].message
        assert len(mails) == 1 and Webhook.received == []  # the webhook refused the first POST
        assert "CẢNH BÁO" in subject(mails[0]) and scenario.AGENCY in subject(mails[0])

        # Still firing: no new notice, but the undelivered webhook one goes out.
        clock["ms"] += 60_000
        assert loop.evaluate() == ([], [])
        assert len(mails) == 1 and [n["event"] for n in Webhook.received] == ["fired"]
        assert Webhook.received[0]["agency_code"] == scenario.AGENCY and Webhook.received[0]["value"] == 0.6

        # November: no dossiers yet, no rate, so it recovers, once.
        clock["ms"] = int(datetime(2026, 11, 2, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)
        fired, recovered = loop.evaluate()
        assert fired == [] and [a.agency_code for a in recovered] == [scenario.AGENCY]
        assert [n["event"] for n in Webhook.received] == ["fired", "recovered"] and len(mails) == 2
        assert "bình thường" in subject(mails[1])
        assert list(stub.ListAlerts(ranking_pb2.ListAlertsRequest()).alerts) == []
        assert loop.evaluate() == ([], []) and len(mails) == 2
    finally:
        server.stop()


def test_a_restart_neither_notifies_again_nor_forgets_a_notice_owed(clean_chdb, receivers):
    """Each loop below is a new ranking process, with nothing of the last one but alert_state."""
    smtp, webhook_url, mails = receivers
    fold(clean_chdb, scenario.EVENTS)
    clock = {"ms": int(datetime(2026, 10, 20, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)}
    october = clock["ms"]
    service = RankingService(load_registry(DEFAULT_AGENCIES), RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0),
                             scenario.RULES_VERSION, CachedMeasures(ClickHouseMeasures(clean_chdb)),
                             clock_ms=lambda: clock["ms"])
    rule = AlertRule(name="dossiers-late", kind="below", indicator="dossier_on_time_rate", threshold=0.9,
                     min_denominator=5, severity="critical")

    def started() -> AlertLoop:
        notifiers = [WebhookNotifier(webhook_url), MailNotifier(smtp.hostname, smtp.port, "dti-pulse@tinh.gov.vn",
                                                                ["trungtam@tinh.gov.vn"])]
        return AlertLoop(service, [rule], notifiers, interval_s=3600, clock_ms=lambda: clock["ms"],
                         records=ClickHouseAlertRecords(clean_chdb))

    fired, _ = started().evaluate()
    assert [a.agency_code for a in fired] == [scenario.AGENCY]
    assert len(mails) == 1 and Webhook.received == []  # the webhook's notice is owed

    clock["ms"] += 60_000
    restarted = started()
    assert restarted.evaluate() == ([], [])  # still firing: not news
    assert len(mails) == 1 and [n["event"] for n in Webhook.received] == ["fired"]  # the owed notice
    firing, _ = restarted.firing()
    assert [(a.agency_code, since) for a, since in firing] == [(scenario.AGENCY, october)]

    clock["ms"] = int(datetime(2026, 11, 2, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)
    fired, recovered = started().evaluate()
    assert fired == [] and [a.agency_code for a in recovered] == [scenario.AGENCY]
    assert [n["event"] for n in Webhook.received] == ["fired", "recovered"] and len(mails) == 2
    assert started().evaluate() == ([], []) and len(mails) == 2 and len(Webhook.received) == 2


def test_a_drop_spanning_a_restart_is_seen_from_the_saved_index_history(clean_chdb):
    """The index falls between two rounds of two ranking processes: the second sees the fall
    only through the first's samples in ClickHouse."""
    fold(clean_chdb, scenario.EVENTS)
    clock = {"ms": int(datetime(2026, 10, 20, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)}
    rule = AlertRule(name="index-drop", kind="drop", points=0.02, window_minutes=60, severity="critical")

    def started(records) -> AlertLoop:  # a new ranking process: nothing cached, nothing in memory
        service = RankingService(load_registry(DEFAULT_AGENCIES), RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0),
                                 scenario.RULES_VERSION, CachedMeasures(ClickHouseMeasures(clean_chdb)),
                                 clock_ms=lambda: clock["ms"])
        return AlertLoop(service, [rule], [], interval_s=3600, clock_ms=lambda: clock["ms"], records=records)

    assert started(ClickHouseAlertRecords(clean_chdb)).evaluate() == ([], [])
    before = {code: fraction for code, _, fraction in ClickHouseAlertRecords(clean_chdb).load_samples(0)}
    # Five dossiers received on 1 October, due on the 3rd, still open: the on-time rate falls.
    fold(clean_chdb, [scenario._received(900 + n, f"LATE{n}", "10-01T09:00", "10-03T17:00", "partial", 1, False)
                      for n in range(5)])
    clock["ms"] += 10 * 60_000
    fired, _ = started(ClickHouseAlertRecords(clean_chdb)).evaluate()
    assert [a.agency_code for a in fired] == [scenario.AGENCY]
    assert fired[0].threshold == pytest.approx(before[scenario.AGENCY] - 0.02)
    # Without the saved history, the same round sees nothing to compare with.
    assert started(None).evaluate() == ([], [])
    # Samples older than the window are not compared with, and are forgotten.
    clock["ms"] += 61 * 60_000
    assert started(ClickHouseAlertRecords(clean_chdb)).evaluate()[0] == []
    assert {at for _, at, _ in ClickHouseAlertRecords(clean_chdb).load_samples(0)} == {clock["ms"]}
