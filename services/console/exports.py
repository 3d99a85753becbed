"""A cohort's ranking and an agency's indicators as CSV and Excel files, for the reports the
province still writes by hand. Built from the same JSON the page shows. No I/O."""
from __future__ import annotations

import csv
import io
from functools import lru_cache
from pathlib import Path

import orjson
import xlsxwriter

STATIC_DIR = Path(__file__).resolve().parent / "static"
LANGUAGES = ("vi", "en")


@lru_cache(maxsize=1)
def translations() -> dict:
    """The page's own strings (static/i18n.json): one source for the screen and the files."""
    return orjson.loads((STATIC_DIR / "i18n.json").read_bytes())


def _t(lang: str, key: str) -> str:
    table = translations()
    return table[lang].get(key) or table["en"].get(key) or key


def _indicator_codes(scores: list[dict]) -> list[str]:
    codes: list[str] = []
    for score in scores:
        for indicator in score["indicators"]:
            if indicator["code"] not in codes:
                codes.append(indicator["code"])
    return codes


def ranking_table(ranking: dict, lang: str) -> tuple[str, list[str], list[list]]:
    """(title, header, rows) of a ranking: one row per agency, ratio and points per indicator."""
    scores = ranking["entries"]
    codes = _indicator_codes(scores)
    header = [_t(lang, "col.rank"), _t(lang, "col.code"), _t(lang, "col.agency"), _t(lang, "col.points"),
              _t(lang, "col.max_points"), _t(lang, "col.fraction"), _t(lang, "col.band")]
    for code in codes:
        name = _t(lang, f"ind.{code}")
        header += [f"{name} ({_t(lang, 'col.ratio')})", f"{name} ({_t(lang, 'col.points')})"]
    rows = []
    for entry in scores:
        by_code = {i["code"]: i for i in entry["indicators"]}
        row = [entry["rank"], entry["agency_code"], entry["agency_name"], round(entry["total_points"], 4),
               round(entry["max_points"], 4), _round(entry["fraction"]),
               _t(lang, f"band.{entry['band']}") if entry["band"] else ""]
        for code in codes:
            indicator = by_code.get(code, {})
            row += [_round(indicator.get("ratio")), _round(indicator.get("points"))]
        rows.append(row)
    title = (f"{_t(lang, 'export.ranking')} - {_t(lang, 'cohort.' + ranking['cohort'])} - {ranking['period']} "
             f"({ranking['rules_version']})")
    return title, header, rows


def agency_table(score: dict, lang: str) -> tuple[str, list[str], list[list]]:
    """(title, header, rows) of one agency's indicators, components under their composite."""
    header = [_t(lang, "col.indicator"), _t(lang, "col.code"), _t(lang, "col.group"), _t(lang, "col.numerator"),
              _t(lang, "col.denominator"), _t(lang, "col.ratio"), _t(lang, "col.points"),
              _t(lang, "col.max_points"), _t(lang, "col.note")]
    rows = []

    def add(indicator: dict, depth: int) -> None:
        rows.append(["  " * depth + _t(lang, f"ind.{indicator['code']}"), indicator["code"], indicator["group"],
                     indicator["numerator"], indicator["denominator"], _round(indicator["ratio"]),
                     _round(indicator["points"]), indicator["max_points"], indicator["note"]])
        for component in indicator["components"]:
            add(component, depth + 1)

    for indicator in score["indicators"]:
        add(indicator, 0)
    rows.append([_t(lang, "col.total"), "", "", "", "", _round(score["fraction"]), round(score["total_points"], 4),
                 round(score["max_points"], 4), _t(lang, f"band.{score['band']}") if score["band"] else ""])
    title = f"{score['agency_name']} ({score['agency_code']}) - {score['period']} ({score['rules_version']})"
    return title, header, rows


def _round(value):
    return None if value is None else round(value, 6)


def to_csv(title: str, header: list[str], rows: list[list]) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel shows the Vietnamese diacritics."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def to_xlsx(title: str, header: list[str], rows: list[list]) -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet("dti-pulse")
    bold = workbook.add_format({"bold": True})
    heading = workbook.add_format({"bold": True, "text_wrap": True, "bg_color": "#E8EEF7", "border": 1})
    sheet.write(0, 0, title, bold)
    sheet.write_row(2, 0, header, heading)
    for index, row in enumerate(rows):
        sheet.write_row(3 + index, 0, ["" if v is None else v for v in row])
    sheet.freeze_panes(3, 0)
    sheet.set_column(0, 0, 12)
    sheet.set_column(1, 1, 16)
    sheet.set_column(2, 2, 40)
    sheet.set_column(3, max(3, len(header) - 1), 14)
    workbook.close()
    return buffer.getvalue()
