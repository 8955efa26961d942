"""Trino's spooling protocol with the Python `trino` client: results in segments of the
encoding the client asks for, inline and spooled, downloaded from any coordinator.
"""

import base64
import datetime
import json
import os
from decimal import Decimal

import lz4.block
import pytest
import requests
import trino
import zstandard

URLS = os.environ["SHOAL_COORDINATORS"].split(",")
ROWS = 60_000
LARGE = (
    "SELECT value AS n, concat('row ', CAST(value AS VARCHAR)) AS s,"
    " CAST(value AS DECIMAL(12,2)) / 100 AS d, DATE '2024-01-01' + CAST(value % 365 AS INTEGER) AS day"
    f" FROM generate_series(1, {ROWS}) AS t(value)"
)


def connect(index, **kwargs):
    host, port = URLS[index % len(URLS)].removeprefix("http://").split(":")
    return trino.dbapi.connect(host=host, port=int(port), user="alice", **kwargs)


def on(base, uri):
    """`uri` asked of another coordinator."""
    return base + "/" + uri.split("/", 3)[3]


def expected_row(n):
    return (
        n,
        f"row {n}",
        (Decimal(n) / 100).quantize(Decimal("0.000001")),
        datetime.date(2024, 1, 1) + datetime.timedelta(days=n % 365),
    )


@pytest.mark.parametrize("encoding", ["json+zstd", "json+lz4", "json"])
def test_a_large_result_in_segments_has_every_row_once(encoding):
    cur = connect(0, encoding=encoding).cursor()
    cur.execute(LARGE)
    rows = cur.fetchall()
    assert len(rows) == ROWS
    by_n = sorted(rows, key=lambda row: row[0])
    assert [row[0] for row in by_n] == list(range(1, ROWS + 1))
    for row in by_n[:: ROWS // 100]:
        n, s, d, day = row
        want = expected_row(n)
        assert (s, day) == (want[1], want[3])
        assert d == Decimal(n) / 100
    assert [d.name for d in cur.description] == ["n", "s", "d", "day"]


def test_types_read_the_same_in_segments_and_in_data_arrays():
    sql = (
        "SELECT CAST(9007199254740993 AS BIGINT) AS big, CAST(12.34 AS DECIMAL(10,2)) AS dec,"
        " 'héllo' AS txt, DATE '2024-02-29' AS day, TIMESTAMP '2024-01-02 03:04:05.123456' AS ts,"
        " [1, 2, NULL] AS arr, map(['a'], [1]) AS m, CAST(NULL AS BIGINT) AS nothing"
    )
    plain = connect(1).cursor()
    plain.execute(sql)
    segmented = connect(2, encoding="json+zstd").cursor()
    segmented.execute(sql)
    assert segmented.fetchall() == plain.fetchall()


def decode(encoding, metadata, payload):
    if "uncompressedSize" in metadata:
        assert len(payload) == metadata["segmentSize"]
        if encoding == "json+zstd":
            payload = zstandard.ZstdDecompressor().decompress(payload)
        else:
            payload = lz4.block.decompress(payload, uncompressed_size=metadata["uncompressedSize"])
        assert len(payload) == metadata["uncompressedSize"]
    return json.loads(payload)


@pytest.mark.parametrize("encoding", ["json+zstd", "json+lz4"])
def test_segments_on_the_wire_are_served_by_every_coordinator(encoding):
    headers = {"X-Trino-User": "alice", "X-Trino-Query-Data-Encoding": f"arrow, {encoding}, json"}
    first = requests.post(f"{URLS[0]}/v1/statement", data=LARGE, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    assert first.headers["X-Trino-Query-Data-Encoding"] == encoding
    answer = first.json()
    rows, spooled, inline, asked = [], [], 0, 0
    while "nextUri" in answer:
        asked += 1
        answer = requests.get(on(URLS[asked % len(URLS)], answer["nextUri"]), headers=headers, timeout=30).json()
        assert "error" not in answer, answer
        data = answer.get("data")
        if data is None:
            continue
        assert isinstance(data, dict) and data["encoding"] == encoding, data
        for segment in data["segments"]:
            metadata = segment["metadata"]
            if segment["type"] == "inline":
                inline += 1
                payload = base64.b64decode(segment["data"])
            else:
                assert segment["type"] == "spooled"
                # Downloaded without credentials, from a coordinator that did not hand it out.
                download = requests.get(on(URLS[(asked + 1) % len(URLS)], segment["uri"]), timeout=30)
                assert download.status_code == 200, download.text
                payload = download.content
                spooled.append(segment)
            page = decode(encoding, metadata, payload)
            assert len(page) == metadata["rowsCount"]
            rows.extend(page)
    assert sorted(row[0] for row in rows) == list(range(1, ROWS + 1))
    assert spooled, "a result of many pages has spooled segments"
    # Row offsets tile the result.
    offsets = sorted((s["metadata"]["rowOffset"], s["metadata"]["rowsCount"]) for s in spooled)
    assert all(a + n <= b for (a, n), (b, _) in zip(offsets, offsets[1:]))
    segment = spooled[0]
    # A wrong slug opens nothing.
    parts = segment["uri"].split("/")
    parts[-3] = "x" * len(parts[-3])
    assert requests.get("/".join(parts), timeout=30).status_code == 404
    # An acknowledged segment is gone.
    ack = requests.get(on(URLS[2], segment["ackUri"]), timeout=30)
    assert ack.status_code == 200
    assert requests.get(segment["uri"], timeout=30).status_code == 404


def test_updates_answer_in_data_arrays_and_small_results_inline():
    headers = {"X-Trino-User": "alice", "X-Trino-Query-Data-Encoding": "json+zstd"}

    def answers(sql):
        answer = requests.post(f"{URLS[0]}/v1/statement", data=sql, headers=headers, timeout=30).json()
        out = []
        while "nextUri" in answer:
            answer = requests.get(answer["nextUri"], headers=headers, timeout=30).json()
            assert "error" not in answer, answer
            if "data" in answer:
                out.append(answer["data"])
        return out

    created = answers("CREATE TABLE spooling_small AS SELECT 1 AS x")
    assert created == [[[1]]]
    small = answers("SELECT x, 'a' AS y FROM spooling_small")
    assert len(small) == 1 and small[0]["encoding"] == "json+zstd"
    (segment,) = small[0]["segments"]
    assert segment["type"] == "inline"
    # Under the compression threshold: plain JSON, no uncompressedSize.
    assert "uncompressedSize" not in segment["metadata"]
    assert json.loads(base64.b64decode(segment["data"])) == [[1, "a"]]
    answers("DROP TABLE spooling_small")
