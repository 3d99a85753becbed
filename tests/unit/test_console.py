"""The console's pure parts: credentials, sessions, period aliases, export tables."""
import csv
import io
from datetime import datetime

import openpyxl
import pytest

from dti_pulse.config import ConfigError, load_settings, settings_to_env
from services.console import exports
from services.console.auth import Authenticator, hash_password, parse_viewers, verify_password
from services.console.views import resolve_period


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now



ADDRESS = "192.0.2.10"


def authenticator(clock=None) -> Authenticator:
    return Authenticator({"an": hash_password("mật khẩu", iterations=1000)}, {"wall-token": "wall"}, b"k" * 32,
                         session_s=3600, clock=clock or Clock(), decoy=hash_password("", iterations=1000))


def test_passwords_are_stored_as_salted_hashes():
    password = "mật khẩu"  # a space and diacritics: never part of the base64 text by chance
    first, second = hash_password(password, iterations=1000), hash_password(password, iterations=1000)
    assert first != second and password not in first  # salted, not the password
    assert verify_password(password, first) and not verify_password("Mật khẩu", first)
    assert not verify_password("pw", "plain-text") and not verify_password("pw", "md5$1$a$b")


def test_sessions_expire_and_cannot_be_forged_or_outlive_their_account():
    clock = Clock()
    auth = authenticator(clock)
    cookie = auth.login("an", "mật khẩu", ADDRESS)
    assert auth.session_user(cookie) == "an"
    body, signature = cookie.rsplit(".", 1)
    other = Authenticator(auth.viewers, {}, b"x" * 32, clock=clock)
    assert other.session_user(cookie) is None  # another secret
    assert auth.session_user(body + "." + signature[::-1]) is None
    assert auth.session_user("garbage") is None and auth.session_user(None) is None
    clock.now += 3601
    assert auth.session_user(cookie) is None
    clock.now -= 3601
    auth.viewers = {}
    assert auth.session_user(cookie) is None  # account removed


def test_failed_logins_delay_a_name_from_one_address_more_each_time_and_not_from_others():
    clock = Clock()
    auth = authenticator(clock)
    for _ in range(5):
        assert auth.login("an", "wrong", "203.0.113.9") is None
    assert auth.locked_for("an", "203.0.113.9") == pytest.approx(60.0)
    # Guesses from one address lock neither the name from elsewhere nor another name.
    assert auth.locked_for("an", ADDRESS) == 0 and auth.login("an", "mật khẩu", ADDRESS)
    assert auth.locked_for("someone-else", "203.0.113.9") == 0
    clock.now += 61
    assert auth.login("an", "wrong", "203.0.113.9") is None
    assert auth.locked_for("an", "203.0.113.9") == pytest.approx(120.0)  # doubled
    clock.now += 121
    assert auth.login("an", "wrong", "203.0.113.9") is None
    assert auth.locked_for("an", "203.0.113.9") == pytest.approx(240.0)
    for _ in range(20):
        auth.login("an", "wrong", "203.0.113.9")
    assert auth.locked_for("an", "203.0.113.9") == pytest.approx(auth.max_lockout_s)  # capped
    clock.now += auth.max_lockout_s + 1
    assert auth.login("an", "mật khẩu", "203.0.113.9")
    assert auth.locked_for("an", "203.0.113.9") == 0


def test_failures_under_made_up_names_do_not_grow_without_bound():
    clock = Clock()
    auth = authenticator(clock)
    auth.max_tracked = 100
    for i in range(1000):
        auth.login(f"guess-{i}", "x", ADDRESS)
        clock.now += 1
    assert len(auth._failures) <= 100 + 1


def test_logout_and_a_changed_password_end_sessions_on_the_server():
    clock = Clock()
    auth = authenticator(clock)
    kept, other = auth.login("an", "mật khẩu", ADDRESS), auth.login("an", "mật khẩu", ADDRESS)
    assert auth.revoke(kept) == "an"
    assert auth.session_user(kept) is None and auth.renewal(kept) is None  # a copy kept is no use
    assert auth.session_user(other) == "an"  # another session of the same user stays
    auth.viewers = {"an": hash_password("mật khẩu mới", iterations=1000)}
    assert auth.session_user(other) is None  # the password changed
    fresh = auth.login("an", "mật khẩu mới", ADDRESS)
    assert auth.session_user(fresh) == "an"
    clock.now += 3601
    auth.revoke(auth.issue("an"))
    assert list(auth._revoked) == [next(iter(auth._revoked))]  # expired revocations are dropped


def test_bearer_tokens_name_a_viewer():
    auth = authenticator()
    assert auth.token_user("Bearer wall-token") == "wall"
    assert auth.token_user("Bearer other") is None and auth.token_user("Basic wall-token") is None
    assert auth.token_user(None) is None


def test_viewers_config_takes_hashes_only_and_never_echoes_a_secret():
    encoded = hash_password("pw", iterations=1000)
    assert parse_viewers(f"an={encoded}, bình={encoded}") == {"an": encoded, "bình": encoded}
    with pytest.raises(ValueError, match="hash-password"):
        parse_viewers("an=plaintext-password")
    with pytest.raises(ConfigError) as error:
        load_settings({"DTI_CONSOLE_VIEWERS": "an=plaintext-password"})
    assert "plaintext-password" not in str(error.value) and "DTI_CONSOLE_VIEWERS" in str(error.value)
    settings = load_settings({"DTI_CONSOLE_VIEWERS": f"an={encoded}", "DTI_CONSOLE_TOKENS": "wall=t"})
    assert load_settings(settings_to_env(settings)) == settings


def test_period_aliases_follow_local_time():
    # 23:30 UTC on 31 Dec is already 1 January in Asia/Ho_Chi_Minh.
    instant = datetime.fromisoformat("2026-12-31T23:30:00+00:00")
    assert [resolve_period(a, instant) for a in ("today", "month", "year")] == ["2027-01-01", "2027-01", "2027"]
    assert resolve_period("2026-Q3", instant) == "2026-Q3"
    previous = [resolve_period(a, instant) for a in ("quarter", "previous_month", "previous_quarter", "previous_year")]
    assert previous == ["2027-Q1", "2026-12", "2026-Q4", "2026"]
    mid_year = datetime.fromisoformat("2026-05-15T12:00:00+07:00")
    assert [resolve_period(a, mid_year) for a in ("quarter", "previous_month", "previous_quarter")] == \
        ["2026-Q2", "2026-04", "2026-Q1"]


def _score(code, fraction, points):
    indicator = {"code": "dossier_on_time_rate", "group": "progress", "numerator": 1, "denominator": 2,
                 "ratio": 0.5, "points": 10.0, "max_points": 20.0, "note": "", "components": []}
    return {"agency_code": code, "agency_name": "Sở Nội vụ", "cohort": "department", "period": "2026-11",
            "indicators": [indicator] if fraction is not None else [dict(indicator, ratio=None, points=None,
                                                                          denominator=0, numerator=0)],
            "total_points": points, "max_points": 20.0 if fraction is not None else 0.0, "fraction": fraction,
            "band": "critical" if fraction is not None else "", "rules_version": "r1"}


def test_ranking_exports_keep_no_value_apart_from_zero_in_both_formats():
    ranking = {"cohort": "department", "period": "2026-11", "rules_version": "r1",
               "entries": [{"rank": 1, **_score("000.00.02.H56", 0.5, 10.0)},
                           {"rank": 2, **_score("000.00.03.H56", None, 0.0)}]}
    ranking["computed_at"] = 1_795_000_000_000  # 2026-11-18 18:06:40 in Hà Nội
    table = exports.ranking_table(ranking, "vi")
    # Excel in vi-VN: ';' between fields, ',' before decimals.
    rows = list(csv.reader(io.StringIO(exports.to_csv(table).decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:7] == ["Hạng", "Mã đơn vị", "Đơn vị", "Điểm", "Điểm tối đa", "Chỉ số (0–1)", "Mức"]
    assert rows[0][7] == "Hồ sơ đúng hạn (tỷ lệ)"
    assert rows[1][:7] == ["1", "000.00.02.H56", "Sở Nội vụ", "10,0", "20,0", "0,5", "Báo động"]
    assert rows[2][5] == "" and rows[2][7] == ""  # no value: empty, not 0
    english = list(csv.reader(io.StringIO(exports.to_csv(exports.ranking_table(ranking, "en")).decode("utf-8-sig"))))
    assert english[1][3:6] == ["10.0", "20.0", "0.5"]
    sheet = openpyxl.load_workbook(io.BytesIO(exports.to_xlsx(table))).active
    assert sheet["A1"].value.startswith("Bảng xếp hạng - Sở, ban, ngành - 2026-11")
    assert sheet["A2"].value.startswith("Số liệu tính đến 18/11/2026 18:06; tạo lúc ")
    assert [c.value for c in sheet[4]][:6] == [1, "000.00.02.H56", "Sở Nội vụ", 10.0, 20.0, 0.5]
    assert sheet["F5"].value is None
    assert sheet["H4"].number_format == "0.0%" and sheet["D4"].number_format == "0.00"  # ratio, points


def test_every_string_the_page_and_exports_use_exists_in_both_languages():
    strings = exports.translations()
    assert set(strings["vi"]) == set(strings["en"])
    from services.ranking.rules import RulesCatalog
    from dti_pulse.config import DEFAULT_RULES_DIR

    def codes(indicators):
        for indicator in indicators:
            yield indicator.code
            yield from codes(getattr(indicator, "components", ()))

    from services.ranking.measures import FACTS

    for family in FACTS.values():
        for label, _ in family:
            assert f"fact.{label}" in strings["vi"], label
    from services.ranking.service import _explained_ratio
    from services.ranking.measures import NotExplainable, explain_plan

    for rules in RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0).rulesets().values():
        for indicator in rules.indicators:  # each reason Explain can give has words on the page
            ratio = _explained_ratio(indicator)
            try:
                plan = explain_plan(ratio.numerator, ratio.denominator)
            except NotExplainable:
                continue
            for code, _, _ in plan.reasons:
                assert f"reason.{code}" in strings["vi"], code
        for code in codes(rules.indicators):
            assert f"ind.{code}" in strings["vi"], code
        for indicator in rules.indicators:
            assert f"group.{indicator.group}" in strings["vi"], indicator.group


def test_a_session_is_renewed_past_half_its_life_and_tokens_can_hold_one():
    clock = Clock()
    auth = authenticator(clock)
    cookie = auth.login("an", "mật khẩu", ADDRESS)
    assert auth.renewal(cookie) is None  # young
    clock.now += 1801
    renewed = auth.renewal(cookie)
    assert renewed and renewed != cookie
    clock.now += 1800  # the first one has expired, the renewed one has not
    assert auth.session_user(cookie) is None and auth.session_user(renewed) == "an"
    assert auth.renewal("forged.cookie") is None
    screen = auth.issue(auth.token_user("Bearer wall-token"))
    assert auth.session_user(screen) == "wall"
    auth.tokens = {}
    assert auth.session_user(screen) is None  # the token was withdrawn


def test_hash_password_prints_a_hash_the_console_accepts():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "hash-password"], input="mật khẩu\n",
                            capture_output=True, text=True, check=True)
    encoded = result.stdout.strip()
    assert verify_password("mật khẩu", encoded) and parse_viewers(f"an={encoded}") == {"an": encoded}
    empty = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "hash-password"], input="\n",
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "empty password" in empty.stderr


def test_explains_english_reasons_say_what_the_page_says():
    """A row that misses a ratio's numerator is explained the same way by gRPC (English) and
    the page: "Full-online procedure, not received online", never "not (of a full-online
    procedure, received online)"."""
    from services.ranking.measures import MEASURE_DEFINITIONS

    english = exports.translations()["en"]
    shortfalls = {key.removeprefix("reason.not:"): text for key, text in english.items()
                  if key.startswith("reason.not:")}
    assert len(shortfalls) >= 7
    for measure, text in shortfalls.items():
        assert MEASURE_DEFINITIONS[measure].shortfall == text


def test_report_periods_are_named_as_the_province_writes_them():
    from services.console.reports import period_name

    assert period_name("2026-12", "vi") == "Tháng 12/2026" and period_name("2026-12", "en") == "December 2026"
    assert period_name("2026-Q4", "vi") == "Quý IV/2026" and period_name("2026-Q1", "en") == "Q1 2026"
    assert period_name("2026", "vi") == "Năm 2026"
    assert period_name("2026-12-03", "vi") == "Ngày 03/12/2026"
