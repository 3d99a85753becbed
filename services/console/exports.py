"""A cohort's ranking and an agency's indicators as CSV and Excel files, for the reports the
province still writes by hand. Built from the same JSON the page shows. No I/O."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import orjson
import xlsxwriter

STATIC_DIR = Path(__file__).resolve().parent / "static"
LANGUAGES = ("vi", "en")


@dataclass(frozen=True)
class Table:
    """What a file holds: a title, when its figures are from, a header, each column's kind
    ("text", "int", "points", "ratio": how a spreadsheet shows it) and the rows."""
    lang: str
    title: str
    as_of: str
    header: list[str]
    kinds: list[str]
    rows: list[list]


def _as_of(lang: str, data: dict, rules_version: str, now: datetime | None = None) -> str:
    from dti_pulse.localtime import LOCAL_TZ

    def local(moment: datetime) -> str:
        return moment.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M" if lang == "vi" else "%d %b %Y %H:%M")

    generated = now or datetime.now(LOCAL_TZ)
    computed = datetime.fromtimestamp(data["computed_at"] / 1000, LOCAL_TZ) if data.get("computed_at") else generated
    return _t(lang, "export.as_of", t=local(computed), g=local(generated), v=rules_version)


@lru_cache(maxsize=1)
def translations() -> dict:
    """The page's own strings (static/i18n.json): one source for the screen and the files."""
    return orjson.loads((STATIC_DIR / "i18n.json").read_bytes())


def _t(lang: str, key: str, **values) -> str:
    """The page's string in this language (English where it has none), {name} filled as app.js's t() does."""
    table = translations()
    text = table[lang].get(key) or table["en"].get(key) or key
    for name, value in values.items():
        text = text.replace(f"{{{name}}}", str(value))
    return text


def _indicator_codes(scores: list[dict]) -> list[str]:
    codes: list[str] = []
    for score in scores:
        for indicator in score["indicators"]:
            if indicator["code"] not in codes:
                codes.append(indicator["code"])
    return codes


def ranking_table(ranking: dict, lang: str, now: datetime | None = None) -> Table:
    """A ranking: one row per agency, ratio and points per indicator."""
    scores = ranking["entries"]
    codes = _indicator_codes(scores)
    header = [_t(lang, "col.rank"), _t(lang, "col.code"), _t(lang, "col.agency"), _t(lang, "col.points"),
              _t(lang, "col.max_points"), _t(lang, "col.fraction"), _t(lang, "col.band")]
    kinds = ["int", "text", "text", "points", "points", "points", "text"]
    for code in codes:
        name = _t(lang, f"ind.{code}")
        header += [f"{name} ({_t(lang, 'col.ratio')})", f"{name} ({_t(lang, 'col.points')})"]
        kinds += ["ratio", "points"]
    # Each published index apart (766 out of 100, the DTI documents), as the province files them.
    indices = [(i["index"], i["index_max_points"]) for i in (scores[0].get("indices", []) if scores else [])]
    for index, scale in indices:
        name = _t(lang, f"index.{index}")
        header += [f"{name} ({_t(lang, 'col.points')})", f"{name} ({_t(lang, 'col.max_points')}, "
                   f"{_t(lang, 'index.scale', max=f'{scale:g}').strip('()')})"]
        kinds += ["points", "points"]
    rows = []
    for entry in scores:
        by_code = {i["code"]: i for i in entry["indicators"]}
        row = [entry["rank"], entry["agency_code"], entry["agency_name"], round(entry["total_points"], 4),
               round(entry["max_points"], 4), _round(entry["fraction"]),
               _t(lang, f"band.{entry['band']}") if entry["band"] else ""]
        for code in codes:
            indicator = by_code.get(code, {})
            row += [_round(indicator.get("ratio")), _round(indicator.get("points"))]
        totals = {i["index"]: i for i in entry.get("indices", [])}
        for index, _ in indices:
            total = totals.get(index)
            row += [round(total["points"], 4), round(total["max_points"], 4)] if total else [None, None]
        rows.append(row)
    title = (f"{_t(lang, 'export.ranking')} - {_t(lang, 'cohort.' + ranking['cohort'])} - {ranking['period']} "
             f"({ranking['rules_version']})")
    return Table(lang, title, _as_of(lang, ranking, ranking["rules_version"], now), header, kinds, rows)


def agency_table(score: dict, lang: str, now: datetime | None = None) -> Table:
    """One agency's indicators, components under their composite."""
    header = [_t(lang, "col.indicator"), _t(lang, "col.code"), _t(lang, "col.group"), _t(lang, "col.numerator"),
              _t(lang, "col.denominator"), _t(lang, "col.ratio"), _t(lang, "col.points"),
              _t(lang, "col.max_points"), _t(lang, "col.note")]
    kinds = ["text", "text", "text", "int", "int", "ratio", "points", "points", "text"]
    rows = []

    def add(indicator: dict, depth: int) -> None:
        rows.append(["  " * depth + _t(lang, f"ind.{indicator['code']}"), indicator["code"], indicator["group"],
                     indicator["numerator"], indicator["denominator"], _round(indicator["ratio"]),
                     _round(indicator["points"]), indicator["max_points"], _note(lang, indicator)])
        for component in indicator["components"]:
            add(component, depth + 1)

    for indicator in score["indicators"]:
        add(indicator, 0)
    rows.append([_t(lang, "col.total"), "", "", "", "", _round(score["fraction"]), round(score["total_points"], 4),
                 round(score["max_points"], 4), _t(lang, f"band.{score['band']}") if score["band"] else ""])
    title = f"{score['agency_name']} ({score['agency_code']}) - {score['period']} ({score['rules_version']})"
    return Table(lang, title, _as_of(lang, score, score["rules_version"], now), header, kinds, rows)


def _note(lang: str, indicator: dict) -> str:
    """The rules file's note (English), in the file's language where the console has it."""
    if not indicator["note"]:
        return ""
    key = f"note.{indicator['code']}"
    return _t(lang, key) if key in translations()[lang] else indicator["note"]


def _round(value):
    return None if value is None else round(value, 6)


def to_csv(table: Table) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel shows the Vietnamese diacritics. In
    Vietnamese, as Excel set to vi-VN reads it: ';' between fields, ',' before decimals."""
    vietnamese = table.lang == "vi"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if vietnamese else ",")
    writer.writerow(table.header)

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float) and vietnamese:
            return repr(value).replace(".", ",")
        return value

    for row in table.rows:
        writer.writerow([cell(v) for v in row])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


NUMBER_FORMATS = {"int": "#,##0", "points": "0.00", "ratio": "0.0%"}


def to_xlsx(table: Table) -> bytes:
    """Numbers kept numbers (ratios shown as percentages, points with two decimals), the
    title, then when the figures are from, then the header."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet("dti-pulse")
    bold = workbook.add_format({"bold": True})
    heading = workbook.add_format({"bold": True, "text_wrap": True, "bg_color": "#E8EEF7", "border": 1})
    formats = {kind: workbook.add_format({"num_format": pattern}) for kind, pattern in NUMBER_FORMATS.items()}
    sheet.write(0, 0, table.title, bold)
    sheet.write(1, 0, table.as_of)
    sheet.write_row(2, 0, table.header, heading)
    for index, row in enumerate(table.rows):
        for column, value in enumerate(row):
            if value is None or value == "":
                sheet.write_blank(3 + index, column, None)
            elif isinstance(value, (int, float)) and table.kinds[column] in formats:
                sheet.write_number(3 + index, column, value, formats[table.kinds[column]])
            else:
                sheet.write(3 + index, column, value)
    sheet.freeze_panes(3, 0)
    sheet.set_column(0, 0, 12)
    sheet.set_column(1, 1, 16)
    sheet.set_column(2, 2, 40)
    sheet.set_column(3, max(3, len(table.header) - 1), 14)
    workbook.close()
    return buffer.getvalue()
