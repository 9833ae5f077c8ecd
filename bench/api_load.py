"""Benchmark: the read API under 50 concurrent clients, cached answers next to the uncached path.

PostgreSQL is loaded through the real pipeline with the 1M-row export file and 1M commerce events
(JSONL landed files spread over 14 days), the marts are built, then ``python -m api`` serves them
twice in the same run: with the answer cache (``API_CACHE=true``) and without (``false``). Each read
endpoint takes ``--concurrency`` clients for ``--seconds`` with ``hey`` (Go, built once from the Go
module proxy into ``.services/bin``); p50/p95/p99, requests/s and non-200 answers are printed and
written to ``bench/out/api_load.json``. Usage::

    python -m bench.api_load [--seconds 30] [--concurrency 50] [--exports-rows 1000000]
                             [--commerce-events 1000000] [--paths /metrics/pais,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from dagster import AssetSelection, DagsterInstance, materialize

from bench.exports_load import _drop_warehouse, _fresh_warehouse, _input_file, _load
from orchestration.commerce import raw_commerce_event_files
from orchestration.definitions import sql_model_assets
from orchestration.exports import raw_exportacao
from resources.landing_zone import LandingZoneResource, file_digest, partition_key_for
from resources.warehouse import WarehouseResource
from services.base import services_home

OUT = Path(__file__).resolve().parent / "out"
HEY_VERSION = "v0.1.4"
# Every endpoint answered from the marts (commerce realtime reads the clock, so it is never cached).
MART_PATHS = (
    "/metrics/resumo",
    "/metrics/pais?limit=10",
    "/metrics/resumo?ano=2023",
    "/api/metrics/summary",
    "/api/metrics/top-products?limit=10",
    "/api/metrics/by-category",
    "/api/metrics/event-types",
    "/api/metrics/timeline?granularity=day&points=14",
    "/v1/exports/pais?limit=10",
    "/v1/commerce/top-products?limit=10",
)


def hey_binary() -> Path:
    """``hey`` at a fixed version, built with the machine's Go into the services' bin folder."""
    target = services_home() / "bin" / f"hey-{HEY_VERSION}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as gobin:
            env = {**os.environ, "GOBIN": gobin, "GOFLAGS": "-modcacherw"}
            subprocess.run(["go", "install", f"github.com/rakyll/hey@{HEY_VERSION}"], env=env, check=True)
            shutil.move(str(Path(gobin) / "hey"), target)
    return target


def _commerce_files(events: int) -> list[Path]:
    folder = OUT / f"commerce_{events}"
    if not folder.exists() or not list(folder.glob("*.jsonl")):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "generators.commerce", "--events", str(events), "--out", str(folder),
             "--files", "4", "--days", "14", "--seed", "5", "--no-progress"],
            check=True,
        )  # fmt: skip
    return sorted(folder.glob("*.jsonl"))


def load(
    warehouse: WarehouseResource, exports_rows: int, commerce_events: int, workdir: Path
) -> dict[str, float]:
    """Both domains through the real assets, then every SQL model; seconds per phase."""
    landing = workdir / "landing"
    timings: dict[str, float] = {}
    with DagsterInstance.ephemeral(tempdir=str(workdir / "dagster")) as instance:
        started = time.perf_counter()
        _load(_input_file(exports_rows, "csv"), warehouse, landing, instance)
        timings["exports_ingest_s"] = time.perf_counter() - started

        resources = {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}
        started = time.perf_counter()
        for source in _commerce_files(commerce_events):
            target = landing / "commerce" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            key = partition_key_for(source.name, file_digest(target))
            instance.add_dynamic_partitions("commerce_files", [key])
            assert materialize(
                [raw_commerce_event_files], partition_key=key, instance=instance, resources=resources
            ).success
        timings["commerce_ingest_s"] = time.perf_counter() - started

        started = time.perf_counter()
        raw = AssetSelection.assets(raw_exportacao, raw_commerce_event_files)
        selection = AssetSelection.groups("exports", "commerce") - raw
        assert materialize(
            [raw_exportacao, raw_commerce_event_files, *sql_model_assets],
            selection=selection,
            instance=instance,
            resources=resources,
        ).success
        timings["models_s"] = time.perf_counter() - started
    return timings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    url: str, cache: bool, workers: int, factory: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m api`` (or uvicorn over another app ``factory``, ``module:function``); its base URL."""
    port = _free_port()
    env = {
        **os.environ, "WAREHOUSE_URL": url, "API_HOST": "127.0.0.1", "API_PORT": str(port),
        "API_WORKERS": str(workers), "API_CACHE": "true" if cache else "false", "API_AUTH": "false",
        "API_METRICS_KAFKA_LAG": "false", "AFLUENTE_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    command = [sys.executable, "-m", "api"]
    if factory is not None:
        command = [
            sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the read API did not become ready in 60 s")


_PERCENTILE = re.compile(r"^\s+(\d+)%+ in ([\d.]+) secs", re.M)
_STATUS = re.compile(r"^\s+\[(\d{3})\]\s+(\d+) responses", re.M)


def hey(binary: Path, url: str, seconds: int, concurrency: int, *options: str) -> dict[str, Any]:
    """One ``hey`` run: requests/s, latency percentiles (ms), answers per status, transport errors.

    ``options`` go to hey before the URL, e.g. ``"-m", "POST", "-T", "application/json", "-d", body``.
    """
    output = subprocess.run(
        [str(binary), "-z", f"{seconds}s", "-c", str(concurrency), "-disable-compression", *options, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = {int(p): float(s) * 1000 for p, s in _PERCENTILE.findall(output)}
    statuses = {int(code): int(n) for code, n in _STATUS.findall(output)}
    # "Error distribution:" lines: "  [count]\tGet|Post "url": reason"
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+(?:Get|Post) ", output, re.M))
    return {
        "rps": rps,
        "p50_ms": percentiles.get(50),
        "p95_ms": percentiles.get(95),
        "p99_ms": percentiles.get(99),
        "statuses": statuses,
        "non_200": sum(n for code, n in statuses.items() if code != 200) + errors,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--exports-rows", type=int, default=1_000_000)
    parser.add_argument("--commerce-events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=0, help="API workers (0: one per core)")
    parser.add_argument("--paths", default=",".join(MART_PATHS))
    args = parser.parse_args(argv)
    binary = hey_binary()
    workers = args.workers or os.cpu_count() or 1
    results: dict[str, Any] = {"concurrency": args.concurrency, "seconds": args.seconds, "workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = _fresh_warehouse("postgres", Path(tmp))
        try:
            results["load"] = load(warehouse, args.exports_rows, args.commerce_events, Path(tmp))
            print(f"loaded: {results['load']}")
            for mode, cache in (("cached", True), ("uncached", False)):
                process, base = serve(warehouse.url, cache, workers)
                try:
                    for path in args.paths.split(","):
                        hey(binary, base + path, 2, 4)  # warm: the first answer fills the cache
                        measured = hey(binary, base + path, args.seconds, args.concurrency)
                        results.setdefault(path, {})[mode] = measured
                        print(f"{mode:8s} {path:52s} {_row(measured)}", flush=True)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
        finally:
            _drop_warehouse("postgres", warehouse)
    _print_summary(results, args.paths.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "api_load.json").write_text(json.dumps(results, indent=2))
    return 0


def _row(m: dict[str, Any]) -> str:
    return (
        f"{m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.1f} ms  p95 {m['p95_ms']:6.1f} ms  "
        f"p99 {m['p99_ms']:6.1f} ms  non-200 {m['non_200']}"
    )


def _print_summary(results: dict[str, Any], paths: list[str]) -> None:
    print(f"\n{results['concurrency']} clients x {results['seconds']} s, {results['workers']} API workers")
    print(f"{'path':52s} {'cached req/s':>12s} {'p95':>8s} {'uncached req/s':>15s} {'p95':>8s} {'ratio':>6s}")
    for path in paths:
        cached, uncached = results[path]["cached"], results[path]["uncached"]
        print(
            f"{path:52s} {cached['rps']:12.0f} {cached['p95_ms']:7.1f}ms {uncached['rps']:15.0f} "
            f"{uncached['p95_ms']:7.1f}ms {cached['rps'] / uncached['rps']:5.1f}x"
        )


if __name__ == "__main__":
    raise SystemExit(main())
