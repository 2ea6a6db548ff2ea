"""`make bench`, the chart: latency distributions and throughput against concurrency (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

GATEWAY, DIRECT, LINE, STOCK = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"


def _boxes(ax: Any, groups: list[list[float]], positions: list[float], color: str) -> None:
    kept = [(g, p) for g, p in zip(groups, positions, strict=True) if g]
    if not kept:
        return
    ax.boxplot(
        [g for g, _ in kept],
        positions=[p for _, p in kept],
        widths=0.35,
        whis=(1, 99),
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": color, "alpha": 0.5},
        medianprops={"color": "black"},
    )


def _per_level(
    ax: Any, x: list[int], levels: list[str], limits: tuple[float, ...], measured: str
) -> None:
    """A box panel's axes: one box per concurrency level, log ms, the targets as dotted lines."""
    ax.set_xticks(x, levels)
    ax.set_yscale("log")
    for limit in limits:
        ax.axhline(limit, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("concurrent conversations")
    ax.set_ylabel(f"{measured} (box: p25–p75, whiskers: p1–p99)")


def _cdf(ax: Any, values: list[float], label: str, color: str) -> None:
    if not values:
        return
    ordered = sorted(values)
    share = [(i + 1) / len(ordered) for i in range(len(ordered))]
    ax.step(ordered, share, where="post", label=label, color=color)


def draw(report: dict[str, Any], samples: dict[str, Any], path: Path) -> None:
    levels = sorted(report["throughput"], key=int)
    x = list(range(len(levels)))
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    fig.suptitle(
        f"make bench · {report['machine']['cpus']} cores · {report['database']} · "
        f"think time {report['config']['think_s'][0]}–{report['config']['think_s'][1]} s",
        fontsize=11,
    )

    ax = axes[0][0]
    _boxes(ax, [samples["gateway"].get(c, []) for c in levels], [i - 0.2 for i in x], GATEWAY)
    _boxes(ax, [samples["direct"].get(c, []) for c in levels], [i + 0.2 for i in x], DIRECT)
    _per_level(ax, x, levels, (100, 1000), "ms per turn")  # p95 targets at 10 and at 200
    ax.set_title("latency per turn: web chat via gateway (blue) vs Rasa REST direct (orange)")

    ax = axes[0][1]
    conc = [int(c) for c in levels]
    ax.plot(conc, [report["throughput"][c] for c in levels], "o-", color=GATEWAY, label="gateway")
    direct = report.get("rasa_direct_throughput", {})
    ax.plot(conc, [direct.get(c) for c in levels], "s-", color=DIRECT, label="Rasa direct")
    bot = report.get("bot_answer_throughput", {})
    ax.plot(conc, [bot.get(c) for c in levels], "o:", color=GATEWAY, label="gateway, bot answers")
    ax.set_xscale("log")
    ax.set_xticks(conc, levels)
    ax.minorticks_off()
    ax.set_xlabel("concurrent conversations")
    ax.set_ylabel("turns/s (dotted: answers that were not the fallback)")
    ax.set_title("throughput (lines) and p95 (dashed) against concurrency")
    right = ax.twinx()
    gateway_p95 = [report["turn_ms"][c]["p95"] for c in levels]
    right.plot(conc, gateway_p95, "o--", color=GATEWAY, label="gateway p95 (right)")
    direct_p95 = [report["rasa_direct_ms"][c]["p95"] for c in levels]
    right.plot(conc, direct_p95, "s--", color=DIRECT, label="Rasa direct p95 (right)")
    right.set_yscale("log")
    right.set_ylabel("p95 ms per turn")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)

    ax = axes[1][0]
    overhead = report["overhead"]
    _cdf(
        ax,
        samples["overhead_gateway"],
        f"gateway (p50 {overhead['gateway_ms']['p50']:.0f} ms)",
        GATEWAY,
    )
    _cdf(
        ax,
        samples["overhead_direct"],
        f"Rasa direct (p50 {overhead['rasa_direct_ms']['p50']:.0f} ms)",
        DIRECT,
    )
    if samples.get("overhead_stock"):
        stock_p50 = report["stock"]["stock_turn_p50_ms"]
        _cdf(ax, samples["overhead_stock"], f"Rasa's demo bot (p50 {stock_p50:.0f} ms)", STOCK)
    ax.set_xscale("log")
    ax.set_xlabel("ms per turn")
    ax.set_ylabel("share of turns")
    ax.set_title(
        f"one conversation at a time, same turns interleaved: "
        f"overhead ×{report['gateway_overhead_p50_ratio']:.2f} at p50"
    )
    ax.legend(loc="lower right")

    ax = axes[1][1]
    _boxes(ax, [samples["line_ack"].get(c, []) for c in levels], x, LINE)
    _per_level(ax, x, levels, (100,), "ms until 200")
    ax.set_title("LINE webhook acknowledgement under the same load")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
