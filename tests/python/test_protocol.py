"""The Python `trino` client against a running Shoal cluster.

The coordinators' client URLs come from SHOAL_COORDINATORS (comma separated).
"""

import datetime
import math
import os
from decimal import Decimal

import pytest
import requests
import trino

from waiting import wait_for

URLS = os.environ["SHOAL_COORDINATORS"].split(",")


def connect(index, **kwargs):
    host, port = URLS[index % len(URLS)].removeprefix("http://").split(":")
    return trino.dbapi.connect(host=host, port=int(port), user="alice", **kwargs)


def wait_for_state(url, query_id, states, timeout=20, user="alice"):
    def probe():
        info = requests.get(f"{url}/v1/query/{query_id}", headers={"X-Trino-User": user}, timeout=5)
        if info.status_code == 200 and info.json()["state"] in states:
            return info.json()
        return None
    return wait_for(probe, timeout, f"query {query_id} in {states}")


@pytest.mark.parametrize("index", range(len(URLS)))
def test_types_round_trip_on_every_coordinator(index):
    cur = connect(index).cursor()
    cur.execute(
        "SELECT CAST(9007199254740993 AS BIGINT) AS big, 1.5e0 AS dbl, CAST(12.34 AS DECIMAL(10,2)) AS dec,"
        " 'héllo' AS txt, true AS flag, DATE '2024-02-29' AS day,"
        " TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, [1, 2, NULL] AS arr,"
        " map(['a', 'b'], [1, 2]) AS m, named_struct('x', 1, 'y', 'z') AS r,"
        " CAST(NULL AS BIGINT) AS nothing, CAST('NaN' AS DOUBLE) AS nan, CAST('Infinity' AS DOUBLE) AS inf"
    )
    rows = cur.fetchall()
    assert len(rows) == 1
    big, dbl, dec, txt, flag, day, ts, arr, m, r, nothing, nan, inf = rows[0]
    assert big == 9007199254740993
    assert dbl == 1.5
    assert dec == Decimal("12.34")
    assert txt == "héllo"
    assert flag is True
    assert day == datetime.date(2024, 2, 29)
    assert ts == datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert arr == [1, 2, None]
    assert m == {"a": 1, "b": 2}
    assert tuple(r) == (1, "z") and r.x == 1 and r.y == "z"
    assert nothing is None
    assert math.isnan(nan)
    assert inf == float("inf")
    types = [d.type_code for d in cur.description]
    assert types[:4] == ["bigint", "double", "decimal(10,2)", "varchar"]
    assert types[6] == "timestamp(9)" or types[6].startswith("timestamp(")
    assert types[7] == "array(bigint)"
    assert types[9] == "row(x bigint, y varchar)"


def test_many_pages_are_read_once_each():
    cur = connect(1).cursor()
    cur.execute("SELECT value FROM generate_series(1, 25000) AS t(value)")
    values = [row[0] for row in cur.fetchall()]
    assert values == list(range(1, 25001))


def test_errors_raise_trino_user_error_with_location():
    cur = connect(2).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        cur.execute("SELECT 1,\n  FROM")
        cur.fetchall()
    error = caught.value
    assert error.error_name == "SYNTAX_ERROR"
    assert error.error_type == "USER_ERROR"
    assert error.error_location == (2, 7), error.error_location
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        cur.execute("SELECT 1 +\n  * 2")
        cur.fetchall()
    assert caught.value.error_location == (2, 3), caught.value.error_location
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        cur.execute("SELECT no_such_column FROM (VALUES (1)) AS t(a)")
        cur.fetchall()
    assert "no_such_column" in caught.value.message
    assert caught.value.error_name == "COLUMN_NOT_FOUND"


def test_cancel_stops_a_running_query():
    conn = connect(0)
    cur = conn.cursor()
    cur.execute("SELECT value FROM generate_series(1, 1000000000) AS t(value)")
    assert cur.fetchone() == [1]
    query_id = cur.query_id
    cur.cancel()
    info = wait_for_state(URLS[1], query_id, {"FAILED"})
    assert info["errorCode"]["name"] == "USER_CANCELED"


def test_next_uri_works_on_every_coordinator_and_pages_repeat():
    headers = {"X-Trino-User": "bob"}
    results = requests.post(f"{URLS[0]}/v1/statement", data="SELECT value FROM generate_series(1, 9000) AS t(value)", headers=headers).json()
    seen = []
    hop = 0
    while "nextUri" in results:
        path = results["nextUri"].split("/", 3)[3]
        hop += 1
        results = requests.get(f"{URLS[hop % len(URLS)]}/{path}", headers=headers).json()
        again = requests.get(f"{URLS[(hop + 1) % len(URLS)]}/{path}", headers=headers).json()
        assert again.get("data") == results.get("data")
        seen.extend(row[0] for row in results.get("data", []))
        if "data" in results:
            assert "columns" in results
    assert results["stats"]["state"] == "FINISHED"
    assert seen == list(range(1, 9001))
    info = requests.get(f"{URLS[-1]}/v1/query/{results['id']}", headers={"X-Trino-User": "bob"}).json()
    assert info["state"] == "FINISHED" and info["session"]["user"] == "bob"


def test_presto_headers_are_answered_in_kind_and_use_sets_the_schema():
    response = requests.post(f"{URLS[1]}/v1/statement", data="USE shoal.sales", headers={"X-Presto-User": "carol"})
    assert response.status_code == 200
    assert response.headers["X-Presto-Set-Schema"] == "sales"
    assert response.headers["X-Presto-Set-Catalog"] == "shoal"
    conn = connect(1)
    cur = conn.cursor()
    cur.execute("USE tpch")
    cur.fetchall()
    assert conn._client_session.schema == "tpch"


def test_malformed_requests_get_4xx_with_a_message():
    url = URLS[0]
    no_user = requests.post(f"{url}/v1/statement", data="SELECT 1")
    assert no_user.status_code == 400 and "User" in no_user.text
    empty = requests.post(f"{url}/v1/statement", data="  ", headers={"X-Trino-User": "a"})
    assert empty.status_code == 400 and "empty" in empty.text
    unknown = requests.get(f"{url}/v1/statement/executing/nope/nope/0", headers={"X-Trino-User": "a"})
    assert unknown.status_code == 404
    bad_token = requests.get(f"{url}/v1/statement/executing/nope/nope/x", headers={"X-Trino-User": "a"})
    assert 400 <= bad_token.status_code < 500
    assert requests.get(f"{url}/v1/info").json()["coordinator"] is True


def test_unnamed_result_columns_are_named_as_trino_names_them():
    cur = connect(1).cursor()
    cur.execute("SELECT x, x + 1, 2 AS two, count(*) FROM (VALUES (1)) AS t(x) GROUP BY x ORDER BY count(*)")
    assert cur.fetchall() == [[1, 2, 2, 1]]
    assert [d[0] for d in cur.description] == ["x", "_col1", "two", "_col3"]


def test_kill_query_fails_a_running_query_with_its_message():
    cur = connect(0).cursor()
    cur.execute("SELECT value FROM generate_series(1, 1000000000) AS t(value)")
    assert cur.fetchone() == [1]
    query_id = cur.query_id
    # Another user may not kill it.
    other = trino.dbapi.connect(host=URLS[2].removeprefix("http://").split(":")[0],
                                port=int(URLS[2].rsplit(":", 1)[1]), user="mallory").cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as denied:
        other.execute(f"CALL system.runtime.kill_query(query_id => '{query_id}', message => 'x')")
        other.fetchall()
    assert denied.value.error_name == "PERMISSION_DENIED"
    killer = connect(1).cursor()
    killer.execute(f"CALL system.runtime.kill_query(query_id => '{query_id}', message => 'too slow')")
    killer.fetchall()
    info = wait_for_state(URLS[2], query_id, {"FAILED"})
    assert info["errorCode"]["name"] == "ADMINISTRATIVELY_KILLED"
    with pytest.raises(trino.exceptions.TrinoQueryError) as killed:
        cur.fetchall()
    assert killed.value.error_name == "ADMINISTRATIVELY_KILLED"
    assert killed.value.message == "Query killed. Message: too slow"
    with pytest.raises(trino.exceptions.TrinoUserError):
        killer.execute(f"CALL system.runtime.kill_query('{query_id}')")
        killer.fetchall()


def test_show_functions_lists_trinos_names_with_their_kind():
    cur = connect(2).cursor()
    cur.execute("SHOW FUNCTIONS LIKE 'date\\_%' ESCAPE '\\'")
    rows = cur.fetchall()
    assert [d[0] for d in cur.description] == [
        "Function", "Return Type", "Argument Types", "Function Type", "Deterministic", "Description"]
    names = [r[0] for r in rows]
    assert {"date_add", "date_diff", "date_trunc"} <= set(names), names
    cur.execute("SHOW FUNCTIONS LIKE 'count_if'")
    assert [(r[0], r[3]) for r in cur.fetchall()] == [("count_if", "aggregate")]
