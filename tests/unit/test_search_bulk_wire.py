"""Both search clients send a prebuilt NDJSON body byte for byte, asking for refused items only.

A stand-in HTTP endpoint records the request: this checks the client plumbing of
``SearchResource.bulk_ndjson`` for Elasticsearch, which has no server on this machine (the OpenSearch
path is also exercised end to end in tests/integration/test_usage_search.py).
"""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from resources.search import SearchResource
from resources.search_bulk import BulkRejectedError, bulk_index, ndjson_chunks

REFUSED = {"index": {"_id": "2", "status": 400, "error": {"type": "mapper_parsing_exception"}}}


@pytest.fixture(params=["opensearch", "elasticsearch"])
def bulk_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[SearchResource, list[dict[str, Any]]]]:
    """A client of each engine pointed at the stand-in endpoint, and the requests it received."""
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            requests.append({"path": self.path, "body": body})
            refused = b'"_id":"2"' in body
            reply = json.dumps({"errors": True, "items": [REFUSED]} if refused else {"errors": False})
            out = reply.encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SearchResource(url=f"http://127.0.0.1:{server.server_port}", engine=request.param), requests
    finally:
        server.shutdown()
        server.server_close()


def test_body_goes_out_unchanged_with_the_reply_filter(
    bulk_endpoint: tuple[SearchResource, list[dict[str, Any]]],
) -> None:
    search, requests = bulk_endpoint
    (chunk,) = ndjson_chunks("idx", [{"n": 1, "w": "ünï"}], "n")
    assert search.bulk_ndjson(chunk.body) == {"errors": False}
    (request,) = requests
    assert request["body"] == chunk.body
    parts = urlsplit(request["path"])
    assert parts.path == "/_bulk"
    assert parse_qs(parts.query)["filter_path"] == ["errors,items.*.error"]


def test_refused_items_are_counted_and_sampled(
    bulk_endpoint: tuple[SearchResource, list[dict[str, Any]]],
) -> None:
    search, requests = bulk_endpoint
    docs = [{"n": n} for n in range(6)]
    with pytest.raises(BulkRejectedError, match="1 documents rejected by idx") as refused:
        bulk_index(search, "idx", docs, id_field="n", chunk_docs=2, threads=2)
    assert "mapper_parsing_exception" in str(refused.value)
    assert len(requests) == 3
