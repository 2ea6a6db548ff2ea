"""Charts as SVG drawn on the server: no script, no library, nothing fetched from elsewhere.

A value may be "<5" (bot/console/insights.py): it is drawn as a short hatched bar, labelled so,
never as a guessed number.
"""

from __future__ import annotations

from html import escape

from markupsafe import Markup

SMALL = "<5"
COLOURS = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2")
ROW_H = 38  # a label line above each bar: long Thai labels are never cut
PLOT_W = 520
FONT = "font-family='Noto Sans Thai, Loma, Garuda, sans-serif' font-size='13'"


def _number(value: int | str) -> float:
    return 2.5 if value == SMALL else float(value)


def bars(rows: list[tuple[str, int | str]], title: str) -> Markup:
    """Horizontal bars, one per (label, value), each under its label."""
    top = max((_number(v) for _, v in rows), default=0) or 1
    height = ROW_H * max(len(rows), 1) + 8
    width = PLOT_W + 60
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' width='{width}' "
        f"viewBox='0 0 {width} {height}' {FONT}>"
        f"<title>{escape(title)}</title>",
        "<defs><pattern id='small' width='6' height='6' patternUnits='userSpaceOnUse' "
        "patternTransform='rotate(45)'><rect width='3' height='6' fill='#94a3b8'/>"
        "</pattern></defs>",
    ]
    for i, (label, value) in enumerate(rows):
        y = 4 + i * ROW_H
        length = PLOT_W * _number(value) / top
        fill = "url(#small)" if value == SMALL else COLOURS[0]
        parts.append(
            f"<text x='0' y='{y + 13}'>{escape(label)}</text>"
            f"<rect x='0' y='{y + 18}' width='{length:.1f}' height='14' fill='{fill}'/>"
            f"<text x='{length + 6:.1f}' y='{y + 30}'>{escape(str(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_days(
    days: list[dict[str, int | str]], series: list[tuple[str, str]], title: str
) -> Markup:
    """Columns per day, stacked by series (key, label), with a legend."""
    plot_h, column_w, left = 160, max(6, min(28, 720 // max(len(days), 1))), 36
    totals = [sum(_number(day[key]) for key, _ in series) for day in days]
    top = max(totals, default=0) or 1
    width = max(left + column_w * len(days) + 20, 420)
    height = plot_h + 70
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' width='{width}' "
        f"viewBox='0 0 {width} {height}' {FONT}>"
        f"<title>{escape(title)}</title>",
        # the scale's top: a height made only of "<5" cells is not a number to print
        f"<text x='0' y='14'>{SMALL if top < 5 else int(top)}</text>",
        f"<line x1='{left}' y1='{plot_h + 10}' x2='{width}' y2='{plot_h + 10}' stroke='#64748b'/>",
    ]
    for i, day in enumerate(days):
        x, base = left + i * column_w, plot_h + 10
        for s, (key, _) in enumerate(series):
            value = day[key]
            h = plot_h * _number(value) / top
            if h:
                fill = "#94a3b8" if value == SMALL else COLOURS[s % len(COLOURS)]
                parts.append(
                    f"<rect x='{x + 1}' y='{base - h:.1f}' width='{column_w - 2}' "
                    f"height='{h:.1f}' fill='{fill}'><title>{escape(str(day['day']))} "
                    f"{escape(str(value))}</title></rect>"
                )
                base -= h
        if i == 0 or i == len(days) - 1:
            anchor = "start" if i == 0 else "end"
            parts.append(
                f"<text x='{x if i == 0 else x + column_w}' y='{plot_h + 28}' "
                f"text-anchor='{anchor}'>{escape(str(day['day']))}</text>"
            )
    for s, (_, label) in enumerate(series):
        x = left + s * 130
        parts.append(
            f"<rect x='{x}' y='{plot_h + 42}' width='12' height='12' "
            f"fill='{COLOURS[s % len(COLOURS)]}'/>"
            f"<text x='{x + 16}' y='{plot_h + 53}'>{escape(label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
