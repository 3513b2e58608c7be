"""The monthly report as one HTML document: the page shows it, WeasyPrint prints it to PDF.

Chinese labels first (the office reads them), the machine names beside them in the CSV and
JSON. Every value is escaped; region names come from imported GeoJSON.
"""

from __future__ import annotations

from html import escape

from service.monthly_report import MonthlyReport, MonthlyRow
from service.report_page.charts import Bar, bar_chart
from service.report_page.pdf import CJK_FAMILY
from vision.taxonomy import Taxonomy

CLOSED_COLOUR, OPEN_COLOUR = "#2ca02c", "#c7c7c7"
KIND_ZH = {"village": "村", "grid": "网格"}
COLUMNS = (
    ("发现", "found"),
    ("已审核", "reviewed"),
    ("确认", "confirmed"),
    ("整改", "rectified"),
    ("按期整改", "rectified_on_time"),
    ("销号", "closed"),
    ("反弹", "rebounds"),
)
STYLE = f"""
body {{ font-family: "{CJK_FAMILY}", "Noto Sans CJK SC", sans-serif; font-size: 11px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 15px; margin-top: 18px; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #bbb; padding: 2px 3px; text-align: right; }}
td.name {{ white-space: nowrap; }}
th:first-child, td:first-child, td.name {{ text-align: left; }}
tr.red td.name {{ color: #c00; font-weight: bold; }} tr.black td.name {{ font-weight: bold; }}
.board {{ display: inline-block; vertical-align: top; margin-right: 32px; }}
@page {{ size: A4 landscape; margin: 12mm; }}
"""


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _board(report: MonthlyReport) -> str:
    parts = []
    for rule in report.rules.labels:
        for kind in ("village", "grid"):
            names = [r.name for r in report.rows if r.kind == kind and r.label == rule.label]
            items = "".join(f"<li>{escape(n)}</li>" for n in names) or "<li>（无）</li>"
            parts.append(
                f'<div class="board {escape(rule.label)}"><h3>{escape(rule.name_zh)} · {KIND_ZH[kind]}</h3>'
                f"<ol>{items}</ol></div>"
            )
    return "".join(parts)


def _rule_text(report: MonthlyReport) -> str:
    order_zh = {"highest": "最高", "lowest": "最低"}
    return "；".join(
        f"{escape(r.name_zh)}：{escape(r.metric)}{order_zh[r.order]}的前 {r.count} 名"
        f"（当月审核不少于 {r.min_reviewed} 件）"
        for r in report.rules.labels
    ) + f"；按期整改：派发后 {report.rules.rectify_within_days:g} 天内"


def _charts(report: MonthlyReport, taxonomy: Taxonomy) -> str:
    villages = [r for r in report.rows if r.kind == "village"]
    closure = bar_chart(
        "销号 / 确认（村）",
        [
            Bar(r.name, [(r.closed, CLOSED_COLOUR), (max(0, r.confirmed - r.closed), OPEN_COLOUR)])
            for r in villages
        ],
    )
    colours = {c.key: c.colour for c in taxonomy}
    area = bar_chart(
        "面积 m²（村，按类别）",
        [Bar(r.name, [(v, colours.get(k, "#888")) for k, v in r.area_m2_by_class.items()]) for r in villages],
        unit=" m²",
    )
    legend = " ".join(
        f'<span style="color:{colours[c.key]}">■</span> {escape(c.name_zh)}' for c in taxonomy
    )
    return f"{closure}{area}<p>{legend}</p>"


def _row(r: MonthlyRow, keys: list[str]) -> str:
    cells = "".join(f"<td>{getattr(r, field)}</td>" for _, field in COLUMNS)
    areas = "".join(f"<td>{r.area_m2_by_class.get(k, 0.0):g}</td>" for k in keys)
    return (
        f'<tr class="{escape(r.label or "")}"><td>{KIND_ZH[r.kind]}</td>'
        f'<td class="name">{escape(r.name)}</td><td class="name">{escape(r.parent_name or "")}</td>'
        f"{cells}<td>{_pct(r.closure_rate)}</td><td>{_pct(r.on_time_rate)}</td>{areas}</tr>"
    )


def report_html(report: MonthlyReport, taxonomy: Taxonomy) -> str:
    keys = list(taxonomy.keys)
    head = "".join(f"<th>{h}</th>" for h, _ in COLUMNS)
    area_head = "".join(f"<th>{escape(taxonomy.get(k).name_zh)} m²</th>" for k in keys)
    rows = "".join(_row(r, keys) for r in report.rows)
    title = f"{escape(report.month)} 人居环境整治月报"
    return (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>按拍摄时间计月（{escape(report.timezone)}）。{_rule_text(report)}。</p>"
        f"<h2>红黑榜</h2>{_board(report)}"
        f"<h2>图表</h2>{_charts(report, taxonomy)}"
        f"<h2>各村、网格</h2><table><thead><tr><th>类型</th><th>名称</th><th>上级</th>{head}"
        f"<th>销号率</th><th>按期率</th>{area_head}</tr></thead><tbody>{rows}</tbody></table>"
        "</body></html>"
    )
