"""The operations-centre console in headless Chromium (Debian's, driven by Playwright), on
the whole stack as `dti-pulse up` starts it. Screenshots go to test-artifacts/."""
import re
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from dti_pulse.localtime import LOCAL_TZ
from services.console.auth import hash_password
from tests import scenario
from tests.conftest import ARTIFACTS, CONSOLE_PASSWORD, poll, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
AGENCY = "000.00.14.H56"


@pytest.fixture
def stack(private_broker, topic_names, services, tmp_path):
    events_topic, dlq_topic = topic_names
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nname = "dossiers-late"\nkind = "below"\nindicator = "dossier_on_time_rate"\n'
                     'threshold = 0.9\nmin_denominator = 2\nseverity = "critical"\n')
    env = service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic,
                      DTI_CONSOLE_VIEWERS=f"operator={hash_password(CONSOLE_PASSWORD, iterations=1000)}",
                      DTI_ALERT_RULES=str(rules), DTI_ALERT_INTERVAL_S="1")
    up = services("up", ["up", "--no-simulator", "--data-dir", str(tmp_path / "data"),
                         "--http-port", env["DTI_HTTP_PORT"], "--grpc-port", env["DTI_GRPC_PORT"],
                         "--console-port", env["DTI_CONSOLE_PORT"]], env)
    poll(lambda: "dti-pulse is up" in up.output() or up.process.poll() is not None, timeout_s=120,
         what="dti-pulse up")
    assert up.process.poll() is None, up.output()
    console_url = f"http://127.0.0.1:{env['DTI_CONSOLE_PORT']}/"
    assert console_url in up.output()  # the URL is printed at start
    yield console_url, f"http://127.0.0.1:{env['DTI_HTTP_PORT']}"


def log_in(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Tên đăng nhập").fill("operator")
    page.get_by_label("Mật khẩu").fill(CONSOLE_PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def live_events(now: datetime) -> list[dict]:
    """Events of the last minutes for one department: a dossier on time, one already late, a
    signed document; all in the current month and day, even just after midnight."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def at(delta_minutes: float) -> str:
        """now + delta; the minutes before now are squeezed into today just after midnight."""
        if delta_minutes >= 0:
            return (now + timedelta(minutes=delta_minutes)).isoformat(timespec="seconds")
        span = min(timedelta(minutes=10), now - today)
        return (now + span * (delta_minutes / 10)).isoformat(timespec="seconds")

    def dossier(dossier_id, due):
        return {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": at(-10),
                "agency_code": AGENCY, "dossier_id": dossier_id, "procedure_code": "1.010708", "channel": 2,
                "service_level": "full_online", "received_at": at(-10), "due_at": due}

    document = {"document_id": f"{AGENCY},{now:%Y/%m/%d},{uuid.uuid4().hex[:6]}/UBND", "from_agency": AGENCY,
                "to_agencies": ["000.00.05.H56"], "document_type": "CV", "promulgated_on": now.date().isoformat()}
    return [dossier("HS-DUNG-HAN", at(2 * 24 * 60)), dossier("HS-TRE-HAN", at(-5)),
            {"event_id": str(uuid.uuid4()), "type": "document.sent", "occurred_at": at(-3), "agency_code": AGENCY,
             **document},
            {"event_id": str(uuid.uuid4()), "type": "document.signed", "occurred_at": at(-2), "agency_code": AGENCY,
             "document_id": document["document_id"], "personal_signature": True, "agency_signature": True}]


def test_an_operator_sees_the_province_move_without_reloading(stack, browser):
    console_url, ingest_url = stack
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}")
            if "/api/stream" not in request.url else None)

    # Log in (Vietnamese by default).
    page.goto(console_url)
    page.get_by_label("Tên đăng nhập").fill("operator")
    page.get_by_label("Mật khẩu").fill("sai")
    page.get_by_role("button", name="Đăng nhập").click()
    page.get_by_text("Sai tên đăng nhập hoặc mật khẩu.").wait_for()
    # The only errors so far: the browser reporting the two 401 answers (no session, wrong password).
    assert len(errors) == 2 and all("401" in error for error in errors), errors
    errors.clear()
    page.get_by_label("Mật khẩu").fill(CONSOLE_PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()

    # The ranking of the departments for this month, live.
    table = page.get_by_test_id("ranking-table")
    table.wait_for()
    assert table.locator("tbody tr").count() == 15
    page.get_by_text("Bảng xếp hạng và tỷ lệ trực tiếp").wait_for()
    expect(page.get_by_test_id("fresh")).to_have_class(re.compile(r"\blive\b"))
    row = table.locator(f'tr[data-agency="{AGENCY}"]')
    assert row.get_by_test_id("fraction").inner_text() == "chưa có dữ liệu"
    assert page.get_by_test_id("activity-total").inner_text() == "0"
    page.evaluate("() => { window.sameDocument = true; }")

    # Events arrive on the bus: the counter and the ranking move, with no reload.
    events = live_events(datetime.now(LOCAL_TZ))
    response = httpx.post(f"{ingest_url}/v1/events", json={"events": events},
                          headers={"Authorization": "Bearer test-token"}, timeout=30)
    assert response.status_code == 200 and response.json()["accepted"] == len(events), response.text
    expect(page.get_by_test_id("activity-total")).to_have_text(str(len(events)), timeout=30_000)
    expect(row.get_by_test_id("rank")).to_have_text("1", timeout=30_000)
    assert page.evaluate("() => window.sameDocument") is True
    assert page.get_by_test_id("count-dossier.received").inner_text() == "2"
    assert row.get_by_test_id("fraction").inner_text() != "chưa có dữ liệu"
    assert row.locator(".band").count() == 1  # coloured band
    # The province's headline: its totals this period, beside the year it published.
    headline = page.get_by_test_id("headline")
    expect(headline.locator('[data-headline="dossier_on_time_rate.count"] .figure')).to_have_text("2", timeout=15_000)
    expect(headline.locator('[data-headline="dossier_on_time_rate"] .figure')).to_have_text("50 %")
    expect(headline.locator('[data-headline="doc_personal_sign_rate"]')).to_contain_text("Công bố năm 2022: 98,72 %")
    # The late dossier (1 of 2 on time) fires the alert rule; the page shows it without a reload.
    alerts = page.get_by_test_id("alerts")
    expect(alerts.locator('li[data-rule="dossiers-late"]')).to_contain_text(
        "hồ sơ đúng hạn 50 %, dưới 90 %", timeout=30_000)
    expect(alerts).to_contain_text("Nghiêm trọng")
    page.screenshot(path=str(ARTIFACTS / "console-ranking-vi.png"), full_page=True)

    # English, without a reload; then back.
    page.get_by_test_id("lang-toggle").click()
    page.get_by_text("Ranking and live rates").wait_for()
    assert "Dossiers received" in page.locator("#counters").inner_text()
    assert page.evaluate("() => document.documentElement.lang") == "en"
    page.screenshot(path=str(ARTIFACTS / "console-ranking-en.png"), full_page=True)
    page.get_by_test_id("lang-toggle").click()
    page.get_by_text("Bảng xếp hạng và tỷ lệ trực tiếp").wait_for()

    # The agency page: trend charts and the dossiers that cost it points.
    row.get_by_role("link").first.click()
    page.get_by_test_id("indicators").wait_for()
    live_rates = page.get_by_test_id("live-rates")  # today, this month, this year side by side
    expect(live_rates.locator('tr[data-rate="dossier_on_time_rate"] td')).to_have_text(["Hồ sơ đúng hạn", "50 %", "50 %",
                                                                                         "50 %"])
    # The early warning: the late dossier is open past its due time.
    expect(page.get_by_test_id("due-counts")).to_have_text("1 hồ sơ quá hạn, 0 hồ sơ sắp đến hạn")
    expect(page.locator('[data-testid=due-list] tr[data-dossier="HS-TRE-HAN"]')).to_contain_text("quá hạn")
    page.locator("[data-testid=trend-day] canvas").wait_for()
    page.locator("[data-testid=trend-month] canvas").wait_for()
    # The portal's metric code on hover, where the portal publishes one.
    expect(page.locator('tr[data-indicator="dossier_sync_rate"] td').first).to_have_attribute("title", "DOSSIER_SYNC")
    assert page.locator('tr[data-indicator="dossier_on_time_rate"] td').first.get_attribute("title") is None
    # An indicator row opens from the keyboard too.
    page.locator('tr[data-indicator="dossier_on_time_rate"]').focus()
    page.keyboard.press("Enter")
    explain = page.get_by_test_id("explain-list")
    explain.wait_for()
    assert explain.locator("li").count() == 1
    # Facts as a person reads them: local dates, a channel and a level by name, no codes.
    facts = explain.locator(".facts").first.inner_text()
    assert re.search(r"Tiếp nhận: \d\d/\d\d/\d{4}", facts), facts
    assert "Kênh: trực tuyến" in facts and "Mức độ dịch vụ: toàn trình" in facts, facts
    assert "+07:00" not in facts and "full_online" not in facts, facts
    expect(live_rates.locator('tr[data-rate="dossier_on_time_rate"] td').nth(1)).to_have_text("50 %")  # kept
    late = explain.locator('li[data-id="HS-TRE-HAN"]')
    expect(late).to_contain_text("đã quá hạn mà chưa giải quyết")  # the reason, in the page's language
    expect(late).to_contain_text("Hạn:")
    # The 766 index apart on its scale of 100, the DTI documents apart.
    expect(page.get_by_test_id("index-766")).to_contain_text("Chỉ số 766")
    expect(page.get_by_test_id("index-766")).to_contain_text("(thang 100 điểm)")
    expect(page.get_by_test_id("index-dti")).to_contain_text("(thang 20 điểm)")
    page.screenshot(path=str(ARTIFACTS / "console-agency-vi.png"), full_page=True)
    page.get_by_test_id("period").select_option("year")  # the agency's rates for the year
    expect(page.locator("#indicators-title")).to_have_text(f"Chỉ tiêu kỳ {datetime.now(LOCAL_TZ).year}")
    expect(page.get_by_test_id("agency-fraction")).not_to_have_text("chưa có dữ liệu")

    # Export links carry the session and give files.
    # The ranking's report, as the province files it, from a second tab of the same session.
    ranking_page = browser.new_context(storage_state=page.context.storage_state(), accept_downloads=True).new_page()
    ranking_page.goto(console_url)
    with ranking_page.expect_download() as report:
        ranking_page.get_by_test_id("export-pdf").click()
    assert report.value.suggested_filename.startswith("ranking-department-")
    assert open(report.value.path(), "rb").read(5) == b"%PDF-"
    ranking_page.close()
    with page.expect_download() as download:
        page.get_by_test_id("export-agency-xlsx").click()
    assert download.value.suggested_filename.startswith(f"agency-{AGENCY}-")
    assert errors == []

    # On a phone the page fits its width: wide tables scroll inside their card.
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    log_in(phone, console_url)
    phone.get_by_test_id("ranking-table").wait_for()
    phone.screenshot(path=str(ARTIFACTS / "console-phone-vi.png"), full_page=True)
    too_wide = phone.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > 392 && getComputedStyle(e).position !== 'fixed')
        .filter((e) => !e.closest('.scroll, .card'))
        .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`).slice(0, 8)""")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390, too_wide


def test_the_page_says_when_its_figures_stop_being_live(console, ranking_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, f"{console.base_url}/")
    page.get_by_test_id("ranking-table").wait_for()
    fresh = page.get_by_test_id("fresh")
    expect(fresh).to_have_class(re.compile(r"\blive\b"))
    expect(fresh).to_have_text(re.compile(r"^Cập nhật \d+ giây trước$"))
    page.get_by_test_id("cohort").select_option("district")  # districts ended on 30 June 2025
    expect(page.get_by_test_id("ranking-table")).to_contain_text("Khối này không có đơn vị nào")
    page.get_by_test_id("cohort").select_option("department")
    # Last month's report: any period the ranking service knows, here the October scenario.
    page.get_by_test_id("period").select_option("custom")
    page.get_by_test_id("period-custom").fill(scenario.PERIOD)
    page.get_by_test_id("period-custom").press("Enter")
    first_row = page.locator("[data-testid=ranking-table] tbody tr").first
    expect(first_row).to_have_attribute("data-agency", scenario.AGENCY)
    assert f"period={scenario.PERIOD}" in page.get_by_test_id("export-xlsx").get_attribute("href")
    banner = page.get_by_test_id("offline-banner")
    expect(banner).to_be_hidden()
    ranking_server.stop()
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_contain_text("Mất kết nối với máy chủ")
    expect(fresh).to_have_class(re.compile(r"\boffline\b"))
    expect(page.locator("main")).to_have_class(re.compile(r"\bstale\b"))
    page.screenshot(path=str(ARTIFACTS / "console-offline-vi.png"), full_page=True)
    # Ranking back: the banner goes and the figures are live again, with no reload.
    ranking_server.start_in_thread()
    expect(banner).to_be_hidden(timeout=30_000)
    expect(fresh).to_have_class(re.compile(r"\blive\b"))
    expect(page.locator("main")).not_to_have_class(re.compile(r"\bstale\b"))
    assert errors == []


def test_a_wall_screen_rotates_the_cohorts_in_large_type(console, ranking_server, browser):
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{console.base_url}/kiosk?token=screen-token&rotate=5")  # no login prompt after the token
    expect(page.locator("body")).to_have_class(re.compile(r"\bwall\b"))
    page.get_by_test_id("ranking-table").wait_for()
    assert page.get_by_test_id("cohort").input_value() == "department"
    expect(page.get_by_test_id("cohort")).to_have_value("commune", timeout=15_000)
    expect(page.get_by_test_id("ranking-table")).to_be_visible()
    assert page.locator("#login").is_hidden() and page.get_by_test_id("cohort").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "console-wall-vi.png"))
    assert errors == []
