"""The monthly / quarterly report as the province files it: a cohort's ranking for a period,
in PDF (A4 landscape) beside the XLSX of exports.py, titled with the period's Vietnamese
name ("Tháng 12/2026", "Quý IV/2026"), when it was generated and by which rules. Built from
the same JSON the page shows. No I/O but the font file.

The font must carry Vietnamese (Liberation Sans does not: its boxes replace ẢẾẠ): DejaVu
Sans (Debian's fonts-dejavu-core), or DTI_REPORT_FONT naming a TTF whose bold face sits
beside it as *-Bold.ttf.
"""
from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

from services.console.exports import Table, _t, ranking_table

FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)  # Debian's fonts-dejavu-core
QUARTERS = {"1": "I", "2": "II", "3": "III", "4": "IV"}


class ReportError(RuntimeError):
    pass


def period_name(label: str, lang: str) -> str:
    """`2026-12` -> "Tháng 12/2026" (vi) / "December 2026"; `2026-Q4` -> "Quý IV/2026" / "Q4 2026";
    `2026` -> "Năm 2026" / "Year 2026"; a day -> "Ngày 03/12/2026" / "3 December 2026"."""
    vietnamese = lang == "vi"
    if len(label) == 4 and label.isdigit():
        return f"Năm {label}" if vietnamese else f"Year {label}"
    if "-Q" in label:
        year, quarter = label.split("-Q")
        return f"Quý {QUARTERS[quarter]}/{year}" if vietnamese else f"Q{quarter} {year}"
    if len(label) == 7:
        moment = datetime.strptime(label, "%Y-%m")
        return f"Tháng {moment.month}/{moment.year}" if vietnamese else moment.strftime("%B %Y")
    if len(label) == 10:
        moment = datetime.strptime(label, "%Y-%m-%d")
        return f"Ngày {moment:%d/%m/%Y}" if vietnamese else f"{moment.day} {moment:%B %Y}"
    return label  # last:Nd and the like


def _fonts() -> tuple[str, str]:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    wanted = os.environ.get("DTI_REPORT_FONT")
    regular = next((p for p in ([wanted] if wanted else FONT_CANDIDATES) if p and Path(p).exists()), None)
    if regular is None:
        raise ReportError("no font with Vietnamese glyphs: install fonts-dejavu-core (apt-get) or set DTI_REPORT_FONT "
                          "to a TTF file")
    bold = regular.replace("-Regular.ttf", "-Bold.ttf").replace("Sans.ttf", "Sans-Bold.ttf")
    if "report" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("report", regular))
        pdfmetrics.registerFont(TTFont("report-bold", bold if Path(bold).exists() else regular))
    return "report", "report-bold"


def _cell(value, kind: str, lang: str) -> str:
    if value is None or value == "":
        return "—"
    if kind == "ratio":
        # No space, and a whole 100 without decimals: the 21 rates' columns hold "99,9%" and "100%".
        text = "100%" if value >= 1 else f"{value * 100:.1f}%"
    elif kind == "points":
        text = f"{value:.2f}"
    elif kind == "int":
        text = f"{value:,}"
    else:
        return str(value)
    return text.replace(",", " ").replace(".", ",") if lang == "vi" else text


def ranking_pdf(ranking: dict, lang: str, now: datetime | None = None) -> bytes:
    """The ranking of a cohort for a period, one row an agency: rank, agency, points, each
    published index's points, the 0-1 index, band, then each indicator's rate."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table as PdfTable, TableStyle

    regular, bold = _fonts()
    table: Table = ranking_table(ranking, lang, now)
    title = (f"{_t(lang, 'export.ranking').upper()} – {_t(lang, 'cohort.' + ranking['cohort']).upper()} – "
             f"{period_name(ranking['period'], lang).upper()}")
    # rank, agency, points / max, each published index's points / its measured max (as the
    # province files them: 766 on its 100-point scale, the DTI documents apart), the 0-1
    # index, band, then the rates (the points per indicator stay in the XLSX).
    indices = [(i["index"], i["index_max_points"]) for i in
               (ranking["entries"][0].get("indices", []) if ranking["entries"] else [])]
    first_index = len(table.header) - 2 * len(indices)  # ranking_table ends with each index's points, max
    rates = [i for i, kind in enumerate(table.kinds) if kind == "ratio"]

    def out_of(row, points: int) -> str:
        if row[points] is None or not row[points + 1]:
            return "—"  # nothing measured
        maximum = row[points + 1]  # a whole number mostly (92, 72, 20): no ",00" to widen the column
        return f"{_cell(row[points], 'points', lang)} / " + (
            _cell(maximum, "points", lang) if maximum != int(maximum) else f"{int(maximum)}")

    header = [table.header[0], table.header[2], table.header[3],
              *(f"{_t(lang, f'index.{index}')} {_t(lang, 'index.scale', max=f'{scale:g}')}" for index, scale in indices),
              table.header[5], table.header[6], *(table.header[i].replace(f" ({_t(lang, 'col.ratio')})", "") for i in rates)]
    text = ParagraphStyle("cell", fontName=regular, fontSize=6.5, leading=8)
    head = ParagraphStyle("head", parent=text, fontName=bold, textColor=colors.HexColor("#1b2433"))
    rate = ParagraphStyle("rate", parent=text, fontSize=6)  # "99,9%" on one line in 21 columns
    rows = [[Paragraph(h, head) for h in header]]
    for row in table.rows:
        cells = [_cell(row[0], "int", lang), row[2], out_of(row, 3),
                 *(out_of(row, first_index + 2 * k) for k in range(len(indices))),
                 _cell(row[5], "points", lang), _cell(row[6], "text", lang)]
        rows.append([*(Paragraph(cell, text) for cell in cells),
                     *(Paragraph(_cell(row[i], "ratio", lang), rate) for i in rates)])
    widths = [9 * mm, 29 * mm, 16 * mm, *([16 * mm] * len(indices)), 10 * mm, 13 * mm]
    rest = (landscape(A4)[0] - 20 * mm - sum(widths)) / max(1, len(header) - len(widths))
    grid = PdfTable(rows, colWidths=widths + [rest] * (len(header) - len(widths)), repeatRows=1)
    # The 766 index has 21 rates beside the totals: narrow padding keeps each on one line.
    grid.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 1.5), ("RIGHTPADDING", (0, 0), (-1, -1), 1.5),
                              ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF7")),
                              ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9aa4b2")),
                              ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=10 * mm, rightMargin=10 * mm,
                                 topMargin=10 * mm, bottomMargin=10 * mm, title=title, author="dti-pulse")
    heading = ParagraphStyle("title", fontName=bold, fontSize=13, leading=16)
    small = ParagraphStyle("small", fontName=regular, fontSize=8, leading=10, textColor=colors.HexColor("#5d6b82"))
    document.build([Paragraph(title, heading), Paragraph(table.as_of, small), Spacer(1, 4 * mm), grid])
    return buffer.getvalue()
