"""Session properties through the Python `trino` client: SET SESSION, RESET SESSION and SHOW
SESSION as Trino has them, the client's session honoured by every coordinator (it travels in
X-Trino-Session), time limits and the memory limit failing queries with Trino's errors, and
the session's time zone (X-Trino-Time-Zone, SET TIME ZONE, current_timezone())."""

import os
import time

import pytest
import trino

URLS = os.environ["SHOAL_COORDINATORS"].split(",")

# Runs for minutes unless stopped: a sum over ten billion generated values.
LONG = "SELECT sum(value) FROM generate_series(1, 10000000000) AS t(value)"


def connect(index, **kwargs):
    host, port = URLS[index % len(URLS)].removeprefix("http://").split(":")
    return trino.dbapi.connect(host=host, port=int(port), user="alice", **kwargs)


def show_session(cur):
    cur.execute("SHOW SESSION")
    return {row[0]: row for row in cur.fetchall()}


def test_set_show_and_reset_session_as_trino_prints_them():
    conn = connect(0)
    cur = conn.cursor()
    rows = show_session(cur)
    assert [c[0] for c in cur.description] == ["Name", "Value", "Default", "Type", "Description"]
    assert rows["query_max_run_time"] == [
        "query_max_run_time", "100.00d", "100.00d", "varchar",
        "Maximum run time of a query (includes the queueing time)"]
    assert "time_zone_id" not in rows, "hidden, as in Trino"
    cur.execute("SET SESSION query_max_run_time = '1h'")
    cur.fetchall()
    assert conn._client_session.properties == {"query_max_run_time": "1h"}
    assert show_session(cur)["query_max_run_time"][1:3] == ["1h", "100.00d"]
    cur.execute("SHOW SESSION LIKE 'query_max_e%'")
    assert [r[0] for r in cur.fetchall()] == ["query_max_execution_time"]
    cur.execute("RESET SESSION query_max_run_time")
    cur.fetchall()
    assert conn._client_session.properties == {}
    assert show_session(cur)["query_max_run_time"][1] == "100.00d"


def test_unknown_properties_and_bad_values_fail_as_in_trino():
    cur = connect(1).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as failed:
        cur.execute("SET SESSION no_such_property = 'x'")
        cur.fetchall()
    assert failed.value.error_name == "INVALID_SESSION_PROPERTY"
    assert "Session property 'no_such_property' does not exist" in failed.value.message
    with pytest.raises(trino.exceptions.TrinoUserError) as failed:
        cur.execute("SET SESSION query_max_run_time = 'soon'")
        cur.fetchall()
    assert failed.value.error_name == "INVALID_SESSION_PROPERTY"
    # A property the client sends that does not exist is an error too.
    cur = connect(2, session_properties={"no_such_property": "1"}).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as failed:
        cur.execute("SELECT 1")
        cur.fetchall()
    assert failed.value.error_name == "INVALID_SESSION_PROPERTY"


@pytest.mark.parametrize("name", ["query_max_run_time", "query_max_execution_time"])
def test_time_limits_fail_a_long_query_on_every_coordinator(name):
    # The property is set through one coordinator and honoured by the others: the client
    # sends its session with every request.
    conn = connect(0)
    cur = conn.cursor()
    cur.execute(f"SET SESSION {name} = '2s'")
    cur.fetchall()
    other = connect(1, session_properties=dict(conn._client_session.properties)).cursor()
    started = time.monotonic()
    with pytest.raises(trino.exceptions.TrinoQueryError) as failed:
        other.execute(LONG)
        other.fetchall()
    took = time.monotonic() - started
    assert failed.value.error_name == "EXCEEDED_TIME_LIMIT", failed.value
    assert "2s" in failed.value.message
    assert took < 30, f"the limit of 2 s took {took:.1f} s to stop the query"
    # A short query under the same limit runs.
    other.execute("SELECT 42")
    assert other.fetchall() == [[42]]


def test_memory_limit_fails_a_query_that_needs_more():
    cur = connect(2, session_properties={"query_max_memory_per_node": "1MB"}).cursor()
    with pytest.raises(trino.exceptions.TrinoQueryError) as failed:
        cur.execute("SELECT count(*) FROM generate_series(1, 2000000) AS a(x) "
                    "JOIN generate_series(1, 2000000) AS b(y) ON x = y")
        cur.fetchall()
    assert failed.value.error_name == "EXCEEDED_LOCAL_MEMORY_LIMIT", failed.value
    roomy = connect(2, session_properties={"query_max_memory_per_node": "1GB"}).cursor()
    roomy.execute("SELECT count(*) FROM generate_series(1, 200000) AS a(x) "
                  "JOIN generate_series(1, 200000) AS b(y) ON x = y")
    assert roomy.fetchall() == [[200000]]


def test_time_zone_from_the_header_and_from_set_time_zone():
    cur = connect(0, timezone="Asia/Tokyo").cursor()
    cur.execute("SELECT current_timezone()")
    assert cur.fetchall() == [["Asia/Tokyo"]]
    conn = connect(1, timezone="Asia/Tokyo")
    cur = conn.cursor()
    cur.execute("SET TIME ZONE 'America/New_York'")
    cur.fetchall()
    assert conn._client_session.properties == {"time_zone_id": "America/New_York"}
    # The property wins over the header, on another coordinator too.
    other = connect(2, timezone="Asia/Tokyo",
                    session_properties=dict(conn._client_session.properties)).cursor()
    other.execute("SELECT current_timezone()")
    assert other.fetchall() == [["America/New_York"]]
    cur.execute("SET TIME ZONE LOCAL")
    cur.fetchall()
    assert "time_zone_id" not in conn._client_session.properties
    with pytest.raises(trino.exceptions.TrinoUserError):
        cur.execute("SET TIME ZONE 'Nowhere/Land'")
        cur.fetchall()


def test_transactions_are_accepted_and_writes_in_one_refused_as_trino_does():
    from trino.transaction import IsolationLevel

    setup = connect(0).cursor()
    setup.execute("CREATE SCHEMA IF NOT EXISTS tx")
    setup.fetchall()
    setup.execute("CREATE TABLE IF NOT EXISTS tx.t (x BIGINT)")
    setup.fetchall()
    conn = connect(1, isolation_level=IsolationLevel.READ_COMMITTED)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM tx.t")
    assert cur.fetchall() == [[0]]
    assert conn.transaction is not None and conn.transaction.id not in (None, "NONE")
    with pytest.raises(trino.exceptions.TrinoUserError) as failed:
        cur.execute("INSERT INTO tx.t VALUES (1)")
        cur.fetchall()
    assert failed.value.error_name == "NOT_SUPPORTED"
    assert "autocommit" in failed.value.message
    conn.commit()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall() == [[1]]
    conn.rollback()
    # Outside a transaction the write goes through; COMMIT without one is an error.
    cur = connect(2).cursor()
    cur.execute("INSERT INTO tx.t VALUES (1)")
    cur.fetchall()
    with pytest.raises(trino.exceptions.TrinoUserError):
        cur.execute("COMMIT")
        cur.fetchall()


def test_task_concurrency_sets_the_partitions_of_each_stage():
    conn = connect(2)
    cur = conn.cursor()
    plan_of = "EXPLAIN SELECT value % 10, count(*) FROM generate_series(1, 100000) AS t(value) GROUP BY 1"
    for partitions in (3, 5):
        cur.execute(f"SET SESSION task_concurrency = {partitions}")
        cur.fetchall()
        cur.execute(plan_of)
        plan = "\n".join(str(cell) for row in cur.fetchall() for cell in row)
        assert f"], {partitions})" in plan, plan
    assert show_session(cur)["task_concurrency"][1] == "5"
    with pytest.raises(trino.exceptions.TrinoUserError) as failed:
        cur.execute("SET SESSION task_concurrency = 0")
        cur.fetchall()
    assert failed.value.error_name == "INVALID_SESSION_PROPERTY"
