"""Smoke tests: real data round-trips through each dev server using the project's own resources."""

from __future__ import annotations

import time

import psycopg
import pytest
from dagster import EnvVar, asset, materialize
from kafka import TopicPartition

import services
from resources.kafka import KafkaResource
from resources.mongo import MongoResource
from resources.search import SearchResource
from services import ConnectionInfo


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_postgres_copy_roundtrip(pg_database_url: str) -> None:
    rows = [(i, f"name-{i}", i * 1.5) for i in range(5000)]
    with psycopg.connect(_libpq(pg_database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, name text NOT NULL, amount double precision)"
        )
        with cur.copy("COPY events (id, name, amount) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute("SELECT count(*), sum(amount), max(name) FROM events")
        assert cur.fetchone() == (5000, sum(r[2] for r in rows), "name-999")
        out = []
        with cur.copy("COPY (SELECT id, name FROM events WHERE id < 3 ORDER BY id) TO STDOUT") as copy:
            out.extend(copy.rows())
        assert out == [("0", "name-0"), ("1", "name-1"), ("2", "name-2")]
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone() == ("off",)
        cur.execute("SHOW fsync")
        assert cur.fetchone() == ("on",)


def test_kafka_produce_consume(kafka_server: ConnectionInfo, kafka_topic: str) -> None:
    kafka = KafkaResource(bootstrap_servers=kafka_server.url)
    assert kafka.create_topic(kafka_topic, partitions=3) is False  # fixture created it: idempotent
    producer = kafka.producer()
    try:
        for i in range(30):
            producer.send(kafka_topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()

    offsets = kafka.end_offsets(kafka_topic)
    assert set(offsets) == {0, 1, 2}
    assert sum(offsets.values()) == 30

    consumer = kafka.consumer(consumer_timeout_ms=5000)
    try:
        partitions = [TopicPartition(kafka_topic, p) for p in offsets]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values = []
        for message in consumer:  # stops after 5 s without messages if some went missing
            values.append(message.value.decode())
            if len(values) == 30:
                break
        values.sort()
    finally:
        consumer.close()
    assert values == sorted(f"v{i}" for i in range(30))
    assert kafka.end_offsets("no-such-topic-" + kafka_topic) == {}


def test_kafka_resource_from_env_var_in_dagster_run(
    kafka_server: ConnectionInfo, kafka_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resource works as users configure it: EnvVar resolved by Dagster at run time."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_server.url)

    @asset
    def produced(kafka: KafkaResource) -> int:
        producer = kafka.producer()
        try:
            for i in range(5):
                producer.send(kafka_topic, f"event-{i}".encode(), partition=i % 3)
            producer.flush(timeout=30)
        finally:
            producer.close()
        return sum(kafka.end_offsets(kafka_topic).values())

    result = materialize(
        [produced], resources={"kafka": KafkaResource(bootstrap_servers=EnvVar("KAFKA_BOOTSTRAP_SERVERS"))}
    )
    assert result.success
    assert result.output_for_node("produced") == 5


def test_ferretdb_insert_find(mongo_server: ConnectionInfo, mongo_database: str) -> None:
    mongo = MongoResource(uri=mongo_server.url, database=mongo_database)
    try:
        assert mongo.client() is mongo.client()  # cached per resource instance
        assert mongo.ping()
        coll = mongo.collection("orders")
        coll.insert_many([{"_id": i, "customer": f"c{i % 5}", "total": i * 10} for i in range(100)])
        assert coll.count_documents({}) == 100
        assert coll.find_one({"_id": 42}) == {"_id": 42, "customer": "c2", "total": 420}
        big = list(coll.find({"total": {"$gte": 950}}, sort=[("_id", 1)]))
        assert [d["_id"] for d in big] == [95, 96, 97, 98, 99]
        coll.update_one({"_id": 1}, {"$set": {"total": -1}})
        assert coll.find_one({"_id": 1})["total"] == -1
        per_customer = {
            d["_id"]: d["n"] for d in coll.aggregate([{"$group": {"_id": "$customer", "n": {"$sum": 1}}}])
        }
        assert per_customer == {f"c{i}": 20 for i in range(5)}
        assert mongo_database in mongo.client().list_database_names()
    finally:
        mongo.close()


def test_opensearch_index_search_alias_switch(
    opensearch_server: ConnectionInfo, search_index_prefix: str
) -> None:
    search = SearchResource(url=opensearch_server.url, engine="opensearch")
    assert search.ping()
    v1, v2, alias = (
        f"{search_index_prefix}items-v1",
        f"{search_index_prefix}items-v2",
        f"{search_index_prefix}items",
    )
    mappings = {
        "properties": {"sku": {"type": "keyword"}, "title": {"type": "text"}, "price": {"type": "double"}}
    }
    assert search.create_index(
        v1, mappings=mappings, settings={"number_of_shards": 1, "number_of_replicas": 0}
    )
    assert search.create_index(v1, mappings=mappings) is False  # exist_ok
    docs = [
        {"sku": f"sku-{i}", "title": f"red shoe {i}" if i % 2 else f"blue hat {i}", "price": i}
        for i in range(50)
    ]
    assert search.bulk_index(v1, docs, id_field="sku") == 50
    search.refresh(v1)
    assert search.count(v1) == 50
    hits = search.search(v1, {"match": {"title": "shoe"}}, size=100)["hits"]
    assert hits["total"]["value"] == 25
    assert {h["_id"] for h in hits["hits"]} == {f"sku-{i}" for i in range(1, 50, 2)}

    assert search.put_alias_atomically(alias, v1) == []
    assert search.create_index(
        v2, mappings=mappings, settings={"number_of_shards": 1, "number_of_replicas": 0}
    )
    assert search.bulk_index(v2, docs[:10], id_field="sku", refresh=True) == 10
    assert search.put_alias_atomically(alias, v2) == [v1]
    assert search.alias_indices(alias) == [v2]
    assert search.count(alias) == 10
    assert search.list_indices(f"{search_index_prefix}*") == [v1, v2]
    assert search.delete_index(v1) is True
    assert search.delete_index(v1) is False


def test_search_resource_picks_client_from_engine_field() -> None:
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch

    assert isinstance(SearchResource(url="http://127.0.0.1:9200").client(), OpenSearch)
    es = SearchResource(
        url="http://127.0.0.1:9200", engine="elasticsearch", username="elastic", password="pw"
    )
    assert isinstance(es.client(), Elasticsearch)


def test_up_is_idempotent() -> None:
    first = services.ensure_up()
    t0 = time.monotonic()
    second = services.ensure_up()
    elapsed = time.monotonic() - t0
    assert set(first) == set(services.SERVICE_NAMES)
    assert {n: i.pid for n, i in second.items()} == {n: i.pid for n, i in first.items()}
    assert all(i.pid for i in second.values())
    assert elapsed < 5, f"second ensure_up took {elapsed:.2f}s"
    assert second["postgres"].url == (
        f"postgresql+psycopg://{services.PG_USER}:{services.PG_PASSWORD}@127.0.0.1:{services.port_for('postgres')}"
        f"/{services.PG_DATABASE}"
    )
    assert second["kafka"].url == f"127.0.0.1:{services.port_for('kafka')}"
    assert second["opensearch"].url == f"http://127.0.0.1:{services.port_for('opensearch')}"
    assert second["ferretdb"].url == f"mongodb://127.0.0.1:{services.port_for('ferretdb')}/"
