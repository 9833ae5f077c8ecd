"""Command-line options the JSON-event generators share (commerce, subscriptions), and their file sink.

One spelling of ``--kafka``/``--topic``/``--rate``/``--out``/``--files``/``--gzip``/``--bad-share``/
``--seed``/``--no-progress`` for every generator that streams :class:`generators.messages.GeneratedEvent`,
one check that exactly one sink is chosen, and one way to land the stream as JSONL files behind a
progress bar.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from generators.messages import GeneratedEvent, SinkReport, write_jsonl_files

__all__ = ["add_stream_arguments", "check_one_sink", "progress_bar", "write_files"]


def add_stream_arguments(parser: argparse.ArgumentParser, *, topic: str, unit: str) -> None:
    """The sink (Kafka topic or JSONL folder), pace, defects, seed and progress options; ``unit``: "event"."""
    parser.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers, e.g. 127.0.0.1:9092")
    parser.add_argument("--topic", default=topic, help=f"Kafka topic (default {topic})")
    parser.add_argument(
        "--rate", type=float, default=0.0, help=f"{unit}s per second; 0 = as fast as possible"
    )
    parser.add_argument("--out", type=Path, help="write JSONL files to this folder instead of Kafka")
    parser.add_argument(
        "--files", type=int, default=1, help=f"number of JSONL files ({unit}s split in order)"
    )
    parser.add_argument("--gzip", action="store_true", help="gzip the JSONL files (.jsonl.gz)")
    parser.add_argument("--bad-share", type=float, default=0.0, help=f"share of malformed {unit}s (0-1)")
    parser.add_argument("--seed", type=int, default=42, help=f"random seed (same seed = same {unit}s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def check_one_sink(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error unless exactly one of ``--kafka`` and ``--out`` is given."""
    if (args.kafka is None) == (args.out is None):
        parser.error("choose exactly one sink: --kafka BOOTSTRAP or --out FOLDER")


def progress_bar(args: argparse.Namespace, total: int | None, *, desc: str, unit: str) -> tqdm:
    """The progress bar on stderr (stdout keeps the summary line), hidden by ``--no-progress``."""
    return tqdm(total=total, unit=unit, desc=desc, disable=args.no_progress, file=sys.stderr)


def write_files(
    args: argparse.Namespace, events: Iterator[GeneratedEvent], *, total: int, prefix: str, bar: tqdm
) -> tuple[SinkReport, str]:
    """Land ``total`` messages as ``--files`` JSONL files in ``--out``; the report and where they went."""
    report, paths = write_jsonl_files(
        events,
        args.out,
        files=args.files,
        per_file=math.ceil(total / args.files),
        prefix=prefix,
        compress=args.gzip,
        progress=bar,
    )
    return report, ", ".join(str(p) for p in paths)
