"""`make bench`: starts the stack, runs the phases, writes and prints the report (see __init__)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import scripts.bench
from scripts.bench import burst, profiling
from scripts.bench.load import SCRIPTS, overhead_phase, run_level
from scripts.bench.metering import Meter
from scripts.bench.offline import parse_time, training_time
from scripts.bench.reporting import build_report, table
from scripts.bench.settings import CLIENT_TIMEOUT_S, OUT, ROOT, Config, loadavg
from scripts.bench.stock import demo_bot, mood_turns, stock_process
from scripts.bench.stock import start as start_stock
from scripts.bench.turns import (
    LINE_SECRET,
    LINE_TOKEN,
    LineReplies,
    Tally,
    direct_turn,
    line_turn,
    webchat_turn,
)
from scripts.stack import GATEWAY_PYTHON, Process, Stack, enable_wal, write_endpoints
from tests.gateway.standin import StandIn


def migrate(database_url: str) -> None:
    subprocess.run(
        [str(GATEWAY_PYTHON.parent / "alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


def start_one_by_one(stack: Stack, timeout: float = 300) -> dict[str, float]:
    """Starts each process alone and times it from launch to its first healthy answer.

    Rasa's endpoints file is written first, as `Stack.start` does: without it Rasa falls back to
    the repository's embedded default (SQLite tracker store, in-memory lock store) and the run
    would not measure PostgreSQL's tracker store or REDIS_URL's lock store."""
    env = stack.env()
    write_endpoints(stack.endpoints_file, env)
    enable_wal(env["TRACKER_STORE_URL"])
    seconds = {}
    for name in stack.names:
        process = stack.processes[name]
        started = time.monotonic()
        process.start(env)
        while not process.healthy():
            if not process.alive():
                raise RuntimeError(f"{name} exited; see {process.log}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name} not healthy after {timeout:.0f}s; see {process.log}")
            time.sleep(0.1)
        seconds[name] = time.monotonic() - started
        print(f"  {name:<8} up in {seconds[name]:.1f} s", flush=True)
    return seconds


# -- the run -------------------------------------------------------------------------------------


async def measure(
    stack: Stack, standin: StandIn, cfg: Config, stock: Process, stock_url: str
) -> dict[str, Any]:
    """Every phase against the running stack; `stock`, Rasa's demo bot, only beside the
    one-at-a-time phase, stopped before the levels so it takes no memory or CPU from them."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    web = httpx.AsyncClient(base_url=stack.gateway_url, timeout=CLIENT_TIMEOUT_S, limits=limits)
    rasa = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S, limits=limits
        )
        for port in stack.rasa_ports
    ]
    demo = httpx.AsyncClient(base_url=stock_url, timeout=CLIENT_TIMEOUT_S, limits=limits)
    replies = LineReplies(standin, asyncio.get_running_loop())
    meter = Meter({name: stack.processes[name].popen.pid for name in stack.names})
    meter.start()
    try:
        print("warming up (first inferences compile the model's graphs)...", flush=True)
        warm = Tally()
        for number, script in enumerate(SCRIPTS[:2]):
            for text in script:
                await webchat_turn(web, f"bench-warmup-{number}", text, warm)
                for index, server in enumerate(rasa):  # every server compiles its graphs
                    user = f"bench-warmup-direct-{number}-{index}"
                    await direct_turn(server, user, text, warm)
                await line_turn(web, replies, f"Ubenchwarmup{number}", text, warm)
            for user, text in itertools.islice(mood_turns(), len(script)):
                await direct_turn(demo, user, text, warm)
        await asyncio.sleep(3)
        idle_rss = meter.rss()

        print(f"overhead: {cfg.overhead_conversations} conversations one at a time...", flush=True)
        overhead = await overhead_phase(web, rasa, cfg.overhead_conversations, demo)
        stock.stop()

        levels: dict[str, dict[str, Any]] = {}
        load_peak: dict[str, float] = {}
        for seed, concurrency in enumerate(cfg.levels, start=1):
            level = await run_level(concurrency, seed, web, rasa, replies, meter, cfg)
            for phase_run in (level["through_gateway"], level["to_rasa"]):
                for name, value in phase_run.peak_rss.items():
                    load_peak[name] = max(load_peak.get(name, 0.0), value)
            levels[str(concurrency)] = level
        await asyncio.sleep(5)
        after_rss = meter.rss()
        line_pushes = replies.pushes  # in the levels, not in the burst
        profile = await profiling.run(web, replies, meter, cfg)
        await asyncio.sleep(5)
        burst_report = await burst.run(web, replies, meter, cfg)
        return {
            "profile": profile,
            "burst": burst_report,
            "idle_rss": idle_rss,
            "load_rss": load_peak,
            "after_rss": after_rss,
            "overhead": overhead,
            "levels": levels,
            "line_pushes": line_pushes,
        }
    finally:
        await meter.stop()
        await web.aclose()
        for server in rasa:
            await server.aclose()
        await demo.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=scripts.bench.__doc__)
    parser.add_argument("--eval", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.yml")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cfg = Config.from_env(args.eval.resolve(), args.out.resolve())
    cfg.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.monotonic(), loadavg()

    train = training_time(cfg)
    parse = parse_time(cfg)
    stock_dir, stock_info = demo_bot(cfg.out)

    var = Path(tempfile.mkdtemp(prefix="stack-", dir=cfg.out))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{var / 'gateway.db'}"
    database = database_url.split(":", 1)[0].split("+", 1)[0]
    migrate(database_url)
    standin = StandIn()
    stack = Stack.on_free_ports(
        var,
        {
            "DATABASE_URL": database_url,
            "USER_ID_SECRET": "bench-user-id-secret",
            **standin.line_env(LINE_SECRET, LINE_TOKEN),
        },
    )
    print(f"starting the stack one process at a time ({database}; var: {var})...", flush=True)
    ok, stock = False, None
    try:
        startup = start_one_by_one(stack)
        stock, stock_url = stock_process(stock_dir, var / "log" / "stock.log")
        print("starting Rasa's demo bot beside it...", flush=True)
        start_stock(stock, stock_url)
        measured = asyncio.run(measure(stack, standin, cfg, stock, stock_url))
        ok = True
    finally:
        stack.stop()
        if stock is not None:
            stock.stop()
        standin.stop()
        if ok and not cfg.keep:
            shutil.rmtree(var, ignore_errors=True)
        else:
            print(f"the stack's databases and logs are kept in {var}", file=sys.stderr)

    report, samples = build_report(
        cfg, measured, startup, train, parse, stock_info, database, started, load_before
    )
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (cfg.out / "samples.json").write_text(json.dumps(samples))
    from scripts.bench.chart import draw

    draw(report, samples, cfg.out / "report.png")
    print()
    print(table(report))
    print(f"\nwritten: {cfg.out / 'report.json'}, {cfg.out / 'report.png'}")


if __name__ == "__main__":
    main()
