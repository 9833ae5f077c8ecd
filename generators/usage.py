"""Sample AI coding-assistant usage events, into MongoDB or as JSON/JSONL files for the landing zone.

Events look like what an IDE plugin reports: a user (with a team and a favourite IDE), the model,
the feature (chat, completion, edit, agent), the prompt and the response text, input/output tokens
that follow the text length plus attached context, latency that follows output size, and a
timestamp inside a date range with working-hours weighting. Users' activity is heavy-tailed, so a
ranking is meaningful, and a few (user, day) *bursts* multiply one user's usage on one day so the
daily-threshold and spike alerts have something to find. Optionally an exact share of documents is
broken on purpose (missing or mistyped fields) to exercise the rejects path.

``updated_at`` is the write time (the change-tracking field the ingest watermark follows);
``created_at`` is the event time. Usage::

    python -m generators.usage --docs 100000 --mongo                      # MONGO_URI, db afluente
    python -m generators.usage --docs 20000 --out data/landing/usage --format jsonl --bad-share 0.01
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bson import ObjectId, json_util
from bson.json_util import JSONMode, JSONOptions
from tqdm import tqdm

from generators.people import FIRST, LAST
from generators.usage_text import LANGUAGES, POOL_SIZE, text_pools
from resources.settings import MongoSettings, UsageSettings

__all__ = [
    "DEFECTS",
    "IDES",
    "MODELS",
    "UsageUser",
    "generate_usage_documents",
    "insert_usage_documents",
    "main",
    "make_users",
    "write_usage_file",
]

IDES: tuple[tuple[str, float], ...] = (
    ("vscode", 0.46),
    ("jetbrains", 0.22),
    ("cursor", 0.16),
    ("neovim", 0.06),
    ("visual_studio", 0.06),
    ("xcode", 0.04),
)
MODELS: tuple[tuple[str, float], ...] = (
    ("gpt-4o", 0.30),
    ("claude-3-5-sonnet", 0.28),
    ("gpt-4o-mini", 0.20),
    ("gemini-1.5-pro", 0.10),
    ("llama-3.1-70b", 0.07),
    ("o1-mini", 0.05),
)
FEATURES: tuple[tuple[str, float], ...] = (
    ("chat", 0.45),
    ("completion", 0.30),
    ("edit", 0.17),
    ("agent", 0.08),
)
TEAMS = ("platform", "payments", "mobile", "data", "growth", "infra", "search", "security")
# Kinds of broken documents (exactly round(docs * bad_share) of them, cycling through the kinds).
DEFECTS: tuple[str, ...] = (
    "missing_user_id",
    "tokens_as_text",
    "negative_tokens",
    "bad_created_at",
    "null_model",
    "missing_updated_at",
    "prompt_not_text",
    "empty_ide",
)

_JSON = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True)


@dataclass(frozen=True)
class UsageUser:
    """A developer: identity, team, favourite IDE and language, and how active they are."""

    user_id: str
    name: str
    email: str
    team: str
    ide: str
    language: str
    activity: float


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...], size: int) -> np.ndarray:
    names = np.array([name for name, _ in table])
    weights = np.array([w for _, w in table])
    return names[rng.choice(len(names), size=size, p=weights / weights.sum())]


def make_users(count: int, rng: np.random.Generator) -> list[UsageUser]:
    """Users with heavy-tailed activity (a few power users, many occasional ones)."""
    ides = _pick(rng, IDES, count)
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=count)
    users = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
        users.append(
            UsageUser(
                user_id=f"u{i + 1:05d}",
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}{i + 1}@example.com".replace("ã", "a").replace(
                    "ú", "u"
                ),
                team=TEAMS[int(rng.integers(len(TEAMS)))],
                ide=str(ides[i]),
                language=LANGUAGES[int(rng.integers(len(LANGUAGES)))],
                activity=float(activity[i]),
            )
        )
    return users


def _break(doc: dict[str, Any], defect: str) -> None:
    if defect == "missing_user_id":
        doc.pop("user_id")
    elif defect == "tokens_as_text":
        doc["input_tokens"] = str(doc["input_tokens"])
    elif defect == "negative_tokens":
        doc["output_tokens"] = -int(doc["output_tokens"]) - 1
    elif defect == "bad_created_at":
        doc["created_at"] = "yesterday afternoon"
    elif defect == "null_model":
        doc["model"] = None
    elif defect == "missing_updated_at":
        doc.pop("updated_at")
    elif defect == "prompt_not_text":
        doc["prompt"] = 12345
    elif defect == "empty_ide":
        doc["ide"] = ""


def generate_usage_documents(
    count: int,
    *,
    users: int = 200,
    start: dt.date = dt.date(2025, 1, 1),
    days: int = 30,
    seed: int = 42,
    bad_share: float = 0.0,
    bursts: int = 3,
    updated_at: dt.datetime | None = None,
    chunk_size: int = 50_000,
) -> Iterator[list[dict[str, Any]]]:
    """Yield ``count`` documents in chunks (memory stays flat for millions of events).

    Deterministic for a ``seed`` except ``_id`` (fresh ObjectIds, as a writer would create) and
    ``updated_at`` (the write time, ``updated_at`` or now at each chunk).
    """
    if count < 0 or days < 1 or users < 1 or not 0 <= bad_share <= 1:
        raise ValueError("need count >= 0, days >= 1, users >= 1 and 0 <= bad_share <= 1")
    rng = np.random.default_rng(seed)
    people = make_users(users, rng)
    prompts, responses, prompt_languages = text_pools(rng)
    prompt_tokens = np.array([max(4, len(p) // 4) for p in prompts])
    response_tokens = np.array([max(8, len(r) // 4) for r in responses])
    weights = np.array([u.activity for u in people])
    weights = weights / weights.sum()
    # Burst (user, day) pairs: never on the first days, so a trailing average exists.
    burst_pairs = [
        (int(rng.integers(users)), int(rng.integers(min(days - 1, 7), days)) if days > 1 else 0)
        for _ in range(bursts)
    ]
    n_burst = min(count, max(len(burst_pairs) * 40, count // 50)) if burst_pairs else 0
    n_bad = round(count * bad_share)
    bad_positions = set(
        rng.choice(count, size=n_bad, replace=False).tolist() if n_bad else []
    )  # which docs to break
    day_start = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    hour_weights = np.array(
        [1, 1, 1, 1, 1, 2, 3, 6, 10, 12, 12, 11, 8, 10, 12, 12, 11, 9, 6, 4, 3, 2, 1, 1.0]
    )
    hour_weights /= hour_weights.sum()
    ide_names = [name for name, _ in IDES]
    produced = 0
    defect_index = 0
    while produced < count:
        size = min(chunk_size, count - produced)
        stamp = updated_at or dt.datetime.now(dt.UTC)
        user_idx = rng.choice(users, size=size, p=weights)
        day = rng.integers(days, size=size)
        burst = np.zeros(size, dtype=bool)
        first_burst = max(0, n_burst - produced)
        if first_burst:
            take = min(first_burst, size)
            pair = np.arange(take) % len(burst_pairs)
            user_idx[:take] = [burst_pairs[p][0] for p in pair]
            day[:take] = [burst_pairs[p][1] for p in pair]
            burst[:take] = True
        hour = rng.choice(24, size=size, p=hour_weights)
        second = rng.integers(3600, size=size)
        text_idx = rng.integers(POOL_SIZE, size=size)
        context = rng.lognormal(mean=6.8, sigma=0.9, size=size).astype(np.int64)
        multiplier = np.where(burst, rng.integers(4, 9, size=size), 1)
        input_tokens = (prompt_tokens[text_idx] + context) * multiplier
        output_tokens = (response_tokens[text_idx] * rng.uniform(0.8, 1.6, size=size)).astype(
            np.int64
        ) * np.where(burst, 3, 1)
        latency = (250 + output_tokens * rng.uniform(8, 25, size=size)).astype(np.int64)
        models = _pick(rng, MODELS, size)
        features = _pick(rng, FEATURES, size)
        other_ide = rng.random(size) < 0.1
        alt_ide = rng.integers(len(ide_names), size=size)
        docs: list[dict[str, Any]] = []
        for i in range(size):
            user = people[int(user_idx[i])]
            created = day_start + dt.timedelta(days=int(day[i]), hours=int(hour[i]), seconds=int(second[i]))
            t = int(text_idx[i])
            doc: dict[str, Any] = {
                "_id": ObjectId(),
                "user_id": user.user_id,
                "user_name": user.name,
                "user_email": user.email,
                "team": user.team,
                "ide": ide_names[int(alt_ide[i])] if other_ide[i] else user.ide,
                "model": str(models[i]),
                "feature": str(features[i]),
                "language": prompt_languages[t],
                "prompt": prompts[t],
                "response": responses[t],
                "input_tokens": int(input_tokens[i]),
                "output_tokens": int(output_tokens[i]),
                "latency_ms": int(latency[i]),
                "created_at": created,
                "updated_at": stamp,
            }
            if produced + i in bad_positions:
                _break(doc, DEFECTS[defect_index % len(DEFECTS)])
                defect_index += 1
            docs.append(doc)
        produced += size
        yield docs


def insert_usage_documents(
    collection: Any, chunks: Iterator[list[dict[str, Any]]], *, total: int, batch_size: int = 10_000
) -> int:
    """Bulk ``insert_many`` (unordered) with a progress bar; creates the change-tracking index."""
    inserted = 0
    with tqdm(total=total, unit="doc", desc=f"mongo {collection.full_name}", disable=total < 10_000) as bar:
        for chunk in chunks:
            for i in range(0, len(chunk), batch_size):
                part = chunk[i : i + batch_size]
                collection.insert_many(part, ordered=False, bypass_document_validation=True)
                inserted += len(part)
                bar.update(len(part))
    collection.create_index([("updated_at", 1), ("_id", 1)], name="updated_at_1__id_1")
    return inserted


def write_usage_file(path: Path, chunks: Iterator[list[dict[str, Any]]], *, fmt: str, total: int) -> int:
    """Write documents as JSONL (one extended-JSON object per line) or one JSON array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")  # the landing sensor ignores *.part files
    written = 0
    with (
        partial.open("w", encoding="utf-8") as handle,
        tqdm(total=total, unit="doc", desc=path.name, disable=total < 10_000) as bar,
    ):
        if fmt == "json":
            handle.write("[\n")
        for chunk in chunks:
            for doc in chunk:
                text = json_util.dumps(doc, json_options=_JSON, ensure_ascii=False)
                if fmt == "json":
                    handle.write((",\n" if written else "") + text)
                else:
                    handle.write(text + "\n")
                written += 1
            bar.update(len(chunk))
        if fmt == "json":
            handle.write("\n]\n")
    partial.replace(path)
    return written


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m generators.usage", description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000, help="number of usage events")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 1, 1))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of malformed documents (0-1)")
    parser.add_argument("--bursts", type=int, default=3, help="(user, day) bursts that should raise alerts")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--mongo", action="store_true", help="insert into MongoDB")
    target.add_argument("--out", type=Path, help="folder (e.g. data/landing/usage) or file to write")
    usage = UsageSettings.current()
    parser.add_argument("--mongo-uri", default=MongoSettings.current().uri)
    parser.add_argument("--database", default=usage.mongo_database)
    parser.add_argument("--collection", default=usage.mongo_collection)
    parser.add_argument("--batch-size", type=int, default=10_000, help="insert_many batch size")
    parser.add_argument("--format", choices=("jsonl", "json"), default="jsonl")
    parser.add_argument("--files", type=int, default=1, help="split into this many files (with --out)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    started = time.perf_counter()
    options = {
        "users": args.users,
        "start": args.start,
        "days": args.days,
        "bad_share": args.bad_share,
        "bursts": args.bursts,
    }
    if args.mongo:
        from pymongo import MongoClient

        client: MongoClient = MongoClient(args.mongo_uri, tz_aware=True)
        try:
            collection = client[args.database][args.collection]
            chunks = generate_usage_documents(args.docs, seed=args.seed, **options)
            count = insert_usage_documents(collection, chunks, total=args.docs, batch_size=args.batch_size)
        finally:
            client.close()
        elapsed = time.perf_counter() - started
        print(f"inserted {count} documents into {args.database}.{args.collection} in {elapsed:.1f}s")
        return
    out: Path = args.out
    per_file = -(-args.docs // max(1, args.files))
    for index in range(max(1, args.files)):
        docs = min(per_file, args.docs - index * per_file)
        if docs <= 0:
            break
        if out.suffix in (".json", ".jsonl", ".ndjson"):
            path = out if args.files == 1 else out.with_name(f"{out.stem}_{index + 1}{out.suffix}")
        else:
            path = out / f"usage_{args.start:%Y%m%d}_{args.seed + index}.{args.format}"
        chunks = generate_usage_documents(docs, seed=args.seed + index, **options)
        written = write_usage_file(path, chunks, fmt=args.format, total=docs)
        print(json.dumps({"file": str(path), "documents": written}))
    print(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
