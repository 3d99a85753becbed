"""The console's web gateway as `dti-pulse serve console` runs it, in front of a real
ranking gRPC server over chDB: auth, the JSON API, exports, the live stream, and the
state it reports when ranking goes away. No browser here (tests/e2e/test_console_browser.py)."""
import io
import re
import time
import uuid
from datetime import datetime

import httpx
import openpyxl
import orjson
import pytest

from dti_pulse.localtime import LOCAL_TZ
from tests import scenario
from tests.conftest import CONSOLE_PASSWORD, fold, now_ms, poll

pytestmark = pytest.mark.integration
def logged_in(client: httpx.Client) -> httpx.Client:
    response = client.post("/api/session", json={"username": "operator", "password": CONSOLE_PASSWORD})
    assert response.status_code == 200, response.text
    return client


def test_everything_but_the_page_shell_needs_a_credential(console):
    for path in ("/api/ranking", "/api/meta", "/api/activity", "/api/stream", "/api/export/ranking.csv",
                 f"/api/agencies/{scenario.AGENCY}", "/api/session"):
        response = console.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"
    assert console.get("/").status_code == 200
    assert console.post("/api/session", json={"username": "operator", "password": "wrong"}).status_code == 401
    assert console.post("/api/session", content=b"not json").status_code == 400
    assert console.get("/api/ranking", headers={"Authorization": "Bearer screen-token"}).status_code == 200
    assert console.get("/api/ranking", headers={"Authorization": "Bearer other"}).status_code == 401
    logged_in(console)
    assert console.get("/api/session").json() == {"user": "operator"}
    cookie = console.cookies["dti_console_session"]
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    for value, status in ((forged, 401), (cookie, 200)):
        with httpx.Client(base_url=console.base_url) as other:
            other.cookies.set("dti_console_session", value)
            assert other.get("/api/session").status_code == status
    logout = console.delete("/api/session")
    assert logout.status_code == 204 and "max-age=0" in logout.headers["set-cookie"].lower()
    assert console.get("/api/session").status_code == 401


def test_a_wall_screen_link_swaps_its_token_for_a_session(console):
    assert console.get("/kiosk", params={"token": "wrong"}).status_code == 401
    response = console.get("/kiosk", params={"token": "screen-token"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert console.get("/api/session").json() == {"user": "wall"}
    assert console.get("/api/ranking").status_code == 200
    wall = console.get("/kiosk", params={"token": "screen-token", "rotate": "20"})
    assert wall.status_code == 303 and wall.headers["location"] == "/#/wall/20"
    assert console.get("/kiosk", params={"token": "screen-token", "rotate": "x"}).headers["location"] == "/"


def test_password_guessing_is_slowed_down(console):
    codes = [console.post("/api/session", json={"username": "operator", "password": f"guess{i}"}).status_code
             for i in range(6)]
    assert codes == [401] * 5 + [429]
    locked = console.post("/api/session", json={"username": "operator", "password": CONSOLE_PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # Someone guessing from one address does not keep the operator out from another.
    with httpx.Client(base_url=console.base_url, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as fresh:
        assert fresh.post("/api/session", json={"username": "operator", "password": CONSOLE_PASSWORD}).status_code == 200


def test_logout_ends_the_session_on_the_server(console):
    logged_in(console)
    copied = console.cookies["dti_console_session"]
    assert console.delete("/api/session").status_code == 204
    with httpx.Client(base_url=console.base_url) as replay:
        replay.cookies.set("dti_console_session", copied)
        assert replay.get("/api/session").status_code == 401
        assert replay.get("/api/ranking").status_code == 401


def test_a_request_from_another_site_changes_nothing(console):
    credentials = orjson.dumps({"username": "operator", "password": CONSOLE_PASSWORD})
    for headers in ({"Origin": "https://evil.example", "Content-Type": "text/plain"},
                    {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
                    {"Origin": "null"}):
        refused = console.post("/api/session", content=credentials, headers=headers)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json", headers
    assert "dti_console_session" not in console.cookies
    same_site = {"Origin": str(console.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    assert console.post("/api/session", content=credentials, headers=same_site).status_code == 200
    assert console.delete("/api/session", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert console.get("/api/session", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # reads are not


def test_logins_failures_exports_and_logouts_are_audited(console):
    console.post("/api/session", json={"username": "operator", "password": "wrong"})
    logged_in(console)
    assert console.get("/api/export/ranking.csv", params={"period": scenario.PERIOD}).status_code == 200
    console.delete("/api/session")

    def records():
        return [orjson.loads(line[line.index("{"):]) for line in console.service.output().splitlines()
                if "dti_pulse.audit" in line]

    found = poll(lambda: len(records()) >= 4 and records(), timeout_s=10, what="four audit records")
    assert [(r["event"], r["user"]) for r in found] == [
        ("login-failed", "operator"), ("login", "operator"), ("export", "operator"), ("logout", "operator")]
    assert found[2]["what"] == f"ranking department {scenario.PERIOD}" and found[2]["format"] == "csv"
    assert all(r["client"] == "127.0.0.1" and r["at"].endswith("+00:00") for r in found)


def test_the_api_serves_the_ranking_services_answers(console):
    logged_in(console)
    meta = console.get("/api/meta").json()
    assert meta["periods"]["month"] == datetime.now(LOCAL_TZ).strftime("%Y-%m") and meta["backend"] == "ok"
    assert meta["rules"]["default_version"] == "dti-pulse-2026" and "dossier.resolved" in meta["activity_types"]
    assert {(v["critical_below"], v["warning_below"]) for v in meta["rules"]["versions"]} == {(0.8, 0.9)}
    ranking = console.get("/api/ranking", params={"cohort": "department", "period": scenario.PERIOD}).json()
    first = ranking["entries"][0]
    assert (first["rank"], first["agency_code"]) == (1, scenario.AGENCY)
    assert first["total_points"] == pytest.approx(scenario.EXPECTED_TOTAL)
    assert first["fraction"] == pytest.approx(scenario.EXPECTED_TOTAL / scenario.EXPECTED_MAX)
    assert ranking["entries"][-1]["fraction"] is None  # no data is null, not 0
    score = console.get(f"/api/agencies/{scenario.AGENCY}", params={"period": scenario.PERIOD}).json()
    assert {i["code"]: (i["numerator"], i["denominator"]) for i in score["indicators"]}["dossier_on_time_rate"] == \
        scenario.EXPECTED["dossier_on_time_rate"][:2]
    assert {i["code"]: i["portal_code"] for i in score["indicators"]}["dossier_sync_rate"] == "DOSSIER_SYNC"
    explain = console.get(f"/api/agencies/{scenario.AGENCY}/explain",
                          params={"indicator": "dossier_on_time_rate", "period": scenario.PERIOD}).json()
    assert {item["id"] for item in explain["items"]} == scenario.EXPECTED_COSTS["dossier_on_time_rate"]
    trend = console.get(f"/api/agencies/{scenario.AGENCY}/trend", params={"granularity": "month"}).json()
    assert len(trend["points"]) == 12 and trend["points"][-1]["period"] == meta["periods"]["month"]
    activity = console.get("/api/activity").json()
    assert sum(activity["totals"].values()) == len(scenario.EVENTS)
    # A ranking with no alert loop has nothing firing, and says it never looked.
    assert console.get("/api/alerts").json() == {"alerts": [], "evaluated_at": None}
    province = console.get("/api/ranking", params={"cohort": "province", "period": scenario.PERIOD}).json()
    assert [e["agency_code"] for e in province["entries"]] == ["000.00.00.H56"]
    bad = console.get("/api/ranking", params={"cohort": "ministry"})
    assert bad.status_code == 400 and "ministry" in bad.json()["detail"]
    assert console.get("/api/agencies/000.99.99.H56").status_code == 404
    assert console.get("/api/ranking", params={"period": "2026-13"}).status_code == 400
    assert console.get(f"/api/agencies/{scenario.AGENCY}/explain").status_code == 400


def assert_report_renders(pdf: bytes, work) -> None:
    """The PDF as poppler reads it: its text in Vietnamese, and a page rendered to PNG that
    holds a table (dark pixels), not a blank page."""
    import shutil
    import subprocess

    from PIL import Image

    if not shutil.which("pdftoppm"):
        pytest.fail("pdftoppm is missing: `make browser` installs Debian's poppler-utils")
    (work / "report.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(work / "report.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "BẢNG XẾP HẠNG" in text and "THÁNG 10/2026" in text and "Số liệu tính đến" in text, text[:500]
    assert "Sở Tài chính" in text and "60,0%" in text  # the scenario's agency, its on-time rate
    # Its total, and each published index on its own scale: 766 (of what is measured, scale 100), the DTI documents.
    dti = scenario.EXPECTED_TOTAL - scenario.EXPECTED_766
    for points, maximum in ((scenario.EXPECTED_TOTAL, scenario.EXPECTED_MAX), (scenario.EXPECTED_766, scenario.EXPECTED_766_MAX),
                            (dti, 20)):
        assert f"{points:.2f} / {maximum:g}".replace(".", ",") in text, (points, text[:1500])
    assert "(DTI)" in text and "(thang 20" in text  # an index's name with its scale
    assert "0,00 / 0" not in text  # an agency with no data has no index points, not zero of zero
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(work / "report.pdf"),
                    str(work / "page")], check=True)
    page = Image.open(next(work.glob("page*.png"))).convert("L")
    assert page.width > page.height  # A4 landscape
    dark = sum(1 for value in page.tobytes() if value < 128)  # one byte a pixel in mode L
    assert dark > page.width * page.height * 0.01, dark


def test_exports_are_the_ranking_and_the_indicators_as_csv_and_excel(console, tmp_path):
    logged_in(console)
    params = {"cohort": "department", "period": scenario.PERIOD}
    csv_vi = console.get("/api/export/ranking.csv", params=params)
    assert csv_vi.status_code == 200 and csv_vi.headers["content-type"].startswith("text/csv")
    assert f'ranking-department-{scenario.PERIOD}.csv' in csv_vi.headers["content-disposition"]
    assert csv_vi.content.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
    lines = csv_vi.content.decode("utf-8-sig").splitlines()
    # As Excel set to vi-VN reads it: ';' between fields, ',' before decimals.
    assert lines[0].startswith("Hạng;Mã đơn vị;Đơn vị;Điểm") and len(lines) == 1 + 15
    assert lines[1].startswith(f"1;{scenario.AGENCY};")
    assert f"{scenario.EXPECTED_TOTAL:.1f}".replace(".", ",")[:3] in lines[1].split(";")[3]
    assert console.get("/api/export/ranking.csv", params={**params, "lang": "en"}).text.lstrip("\ufeff").startswith(
        "Rank,Agency code,Agency,Points")
    xlsx = console.get("/api/export/ranking.xlsx", params=params)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[2][:3] == ("Hạng", "Mã đơn vị", "Đơn vị") and rows[3][:2] == (1, scenario.AGENCY)
    assert rows[1][0].startswith("Số liệu tính đến ")  # when the figures are from
    assert rows[3][3] == pytest.approx(scenario.EXPECTED_TOTAL, abs=1e-4)
    # The 766 index and the DTI documents apart, in the last columns.
    assert rows[2][-4:] == ("Chỉ số 766 (Điểm)", "Chỉ số 766 (Điểm tối đa, thang 100 điểm)",
                            "Văn bản (DTI) (Điểm)", "Văn bản (DTI) (Điểm tối đa, thang 20 điểm)")
    assert rows[3][-4:] == pytest.approx((scenario.EXPECTED_766, scenario.EXPECTED_766_MAX, scenario.EXPECTED_TOTAL - scenario.EXPECTED_766,
                                          20), abs=1e-4)
    agency = console.get(f"/api/export/agencies/{scenario.AGENCY}.xlsx", params={"period": scenario.PERIOD})
    rows = list(openpyxl.load_workbook(io.BytesIO(agency.content)).active.iter_rows(values_only=True))
    by_code = {row[1]: row for row in rows[3:]}
    numerator, denominator, points = scenario.EXPECTED["dossier_on_time_rate"]
    assert by_code["dossier_on_time_rate"][3:5] == (numerator, denominator)
    assert by_code["dossier_on_time_rate"][6] == pytest.approx(points)
    report = console.get("/api/export/ranking.pdf", params=params)
    assert report.status_code == 200 and report.headers["content-type"] == "application/pdf"
    assert_report_renders(report.content, tmp_path)
    assert console.get(f"/api/export/agencies/{scenario.AGENCY}.pdf", params=params).status_code == 400
    assert console.get("/api/export/ranking.csv", params={**params, "lang": "fr"}).status_code == 400


def read_events(lines, wanted, timeout_s=20.0):
    """SSE events from a stream's lines until `wanted(name, data)` is true; returns them."""
    seen, name, deadline = [], None, time.monotonic() + timeout_s
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            seen.append((name, orjson.loads(line[6:])))
            if wanted(*seen[-1]):
                return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no such event in {[n for n, _ in seen]}")


def test_the_stream_pushes_the_ranking_activity_and_score_after_an_event(console, clean_chdb):
    logged_in(console)
    params = {"cohort": "department", "period": scenario.PERIOD, "agency": scenario.AGENCY}
    with console.stream("GET", "/api/stream", params=params, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = read_events(lines, lambda name, data: name == "score")
        names = {name for name, _ in first}
        assert {"status", "score"} <= names
        events_before = sum(1 for raw in scenario.EVENTS if raw["agency_code"] == scenario.AGENCY)
        late = {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": "2026-10-20T08:00:00+07:00",
                "agency_code": scenario.AGENCY, "dossier_id": "LIVE-1", "procedure_code": "1.010708", "channel": 2,
                "service_level": "full_online", "received_at": "2026-10-20T08:00:00+07:00",
                "due_at": "2026-10-22T17:00:00+07:00"}
        fold(clean_chdb, [late], ingested_at_ms=now_ms())
        seen = set()

        def on_time_denominator(score):
            return {i["code"]: i["denominator"] for i in score["indicators"]}["dossier_on_time_rate"]

        def all_updated(name, data):
            if name == "score" and on_time_denominator(data) == 6:
                seen.add(name)
            if name == "ranking" and any(e["agency_code"] == scenario.AGENCY and on_time_denominator(e) == 6
                                         for e in data["entries"]):
                seen.add(name)
            if name == "activity" and sum(data["totals"].values()) == events_before + 1:
                seen.add(name)  # written after the state: may come before or after the score
            return seen == {"score", "ranking", "activity"}

        read_events(lines, all_updated)


def test_the_stream_says_when_ranking_is_unreachable_and_recovers_with_it(console, ranking_server):
    logged_in(console)
    with console.stream("GET", "/api/stream", params={"cohort": "department", "period": scenario.PERIOD},
                        timeout=30) as response:
        lines = response.iter_lines()
        read_events(lines, lambda name, data: name == "status" and data["backend"] == "ok")
        ranking_server.stop()
        status = read_events(lines, lambda name, data: name == "status" and data["backend"] == "unreachable")
        assert status[-1][1]["server_time"] > 0
        assert console.get("/healthz").status_code == 503
        assert console.get("/api/ranking").status_code == 503
        # Ranking comes back on the same address: the same stream goes live again by itself.
        ranking_server.start_in_thread()
        back = read_events(lines, lambda name, data: name == "ranking", timeout_s=30)
        assert back[-1][1]["entries"][0]["agency_code"] == scenario.AGENCY
        read_events(lines, lambda name, data: name == "status" and data["backend"] == "ok")
    assert console.get("/healthz").status_code == 200


def test_the_stream_says_which_part_of_the_pipeline_is_down(console, ranking_server):
    """Ranking up, its store not answering: the console names the store, and clears it after."""
    logged_in(console)
    working_probe = ranking_server.monitor.store_ping

    def store_away():
        raise ConnectionError("Connection refused: clickhouse:8123")

    with console.stream("GET", "/api/stream", params={"cohort": "department", "period": scenario.PERIOD},
                        timeout=30) as response:
        lines = response.iter_lines()
        ok = read_events(lines, lambda name, data: name == "status" and data["pipeline"] is not None)
        assert ok[-1][1]["pipeline"]["store"] == "ok" and ok[-1][1]["pipeline"]["problems"] == []
        ranking_server.monitor.store_ping = store_away
        down = read_events(lines, lambda name, data: name == "status" and data["pipeline"]
                           and data["pipeline"]["store"] == "unreachable")
        assert "store unreachable: Connection refused" in down[-1][1]["pipeline"]["problems"][0]
        poll(lambda: console.get("/healthz").status_code == 503, timeout_s=10,
             what="the console's health to follow ranking's (no answers without its store)")
        ranking_server.monitor.store_ping = working_probe
        read_events(lines, lambda name, data: name == "status" and data["pipeline"]
                    and data["pipeline"]["problems"] == [] and data["backend"] == "ok")


def test_the_page_and_its_libraries_are_served_locally(console):
    page = console.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for path in ("/static/app.js", "/static/app.css", "/static/i18n.json", "/vendor/uplot/uPlot.iife.min.js",
                 "/vendor/uplot/uPlot.min.css", "/vendor/font/400.css",
                 "/vendor/font/files/be-vietnam-pro-vietnamese-400-normal.woff2"):
        assert console.get(path).status_code == 200, path
    for path in ("/", "/static/app.js", "/static/app.css", "/vendor/font/400.css"):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", console.get(path).text), path


def test_the_report_command_writes_the_months_pdf_and_xlsx(ranking_server, tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import GRPC_TOKEN

    env = {**os.environ, "DTI_RANKING_ADDRESS": f"127.0.0.1:{ranking_server.port}", "DTI_RANKING_TOKEN": GRPC_TOKEN}
    done = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "report", "department", scenario.PERIOD,
                           "--out", str(tmp_path / "reports")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stem = tmp_path / "reports" / f"ranking-department-{scenario.PERIOD}-vi"
    assert_report_renders(stem.with_suffix(".pdf").read_bytes(), tmp_path)
    sheet = openpyxl.load_workbook(stem.with_suffix(".xlsx")).active
    assert sheet["B4"].value == scenario.AGENCY
