"""Prepared statements through the Python `trino` client: `execute(sql, params)` and
`executemany`, both ways the client has (EXECUTE IMMEDIATE, and PREPARE / EXECUTE / DEALLOCATE
with the statement carried in a header), each through another coordinator than the one that
created the table, and parameters that would break a statement spliced as text."""

import datetime
import os
import urllib.parse
from decimal import Decimal

import pytest
import requests
import trino

URLS = os.environ["SHOAL_COORDINATORS"].split(",")


def connect(index, **kwargs):
    host, port = URLS[index % len(URLS)].removeprefix("http://").split(":")
    return trino.dbapi.connect(host=host, port=int(port), user="alice", **kwargs)


def run(index, sql, params=None, **kwargs):
    cur = connect(index, **kwargs).cursor()
    cur.execute(sql, params)
    return cur.fetchall()


@pytest.fixture(scope="module")
def people():
    run(0, "CREATE SCHEMA prepared")
    run(0, "CREATE TABLE prepared.people (id BIGINT, name VARCHAR)")
    run(0, "INSERT INTO prepared.people VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')")
    return "prepared.people"


@pytest.mark.parametrize("legacy", [False, True], ids=["execute-immediate", "prepare-execute"])
def test_execute_with_parameters(people, legacy):
    rows = run(1, f"SELECT name FROM {people} WHERE id = ?", (2,), legacy_prepared_statements=legacy)
    assert rows == [["bob"]]
    rows = run(2, f"SELECT id FROM {people} WHERE name IN (?, ?) ORDER BY id", ("cy", "ann"),
               legacy_prepared_statements=legacy)
    assert rows == [[1], [3]]


@pytest.mark.parametrize("legacy", [False, True], ids=["execute-immediate", "prepare-execute"])
def test_executemany_inserts_every_row_once(legacy):
    table = f"prepared.many_{int(legacy)}"
    run(0, f"CREATE TABLE {table} (id BIGINT, name VARCHAR, price DOUBLE, day DATE, flag BOOLEAN)")
    cur = connect(1, legacy_prepared_statements=legacy).cursor()
    rows = [
        (1, "plain", 1.5, datetime.date(2024, 1, 2), True),
        (2, "it's quoted, '' twice", -0.25, datetime.date(2024, 2, 29), False),
        (3, None, None, None, None),
    ]
    cur.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", rows)
    cur.fetchall()
    got = run(2, f"SELECT id, name, price, day, flag FROM {table} ORDER BY id")
    assert got == [list(row) for row in rows]


def test_a_hostile_parameter_is_data(people):
    hostile = "x'); DROP TABLE prepared.people; --"
    run(1, "CREATE TABLE prepared.notes (note VARCHAR)")
    cur = connect(2).cursor()
    cur.execute("INSERT INTO prepared.notes VALUES (?)", (hostile,))
    assert cur.fetchall() == [[1]]
    assert run(0, "SELECT note FROM prepared.notes") == [[hostile]]
    assert run(1, f"SELECT count(*) FROM {people}") == [[3]]
    assert run(2, f"SELECT count(*) FROM {people} WHERE name = ?", (hostile,)) == [[0]]


def test_decimal_parameters(people):
    assert run(1, "SELECT CAST(? AS DECIMAL(10, 2)) + 1", (Decimal("12.34"),)) == [[Decimal("13.34")]]


def test_wrong_parameter_count_and_unknown_statement_are_errors(people):
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        run(1, f"SELECT name FROM {people} WHERE id = ? AND name = ?", (1,))
    assert caught.value.error_name == "INVALID_PARAMETER_USAGE"
    headers = {"X-Trino-User": "alice"}
    answer = requests.post(f"{URLS[0]}/v1/statement", data="EXECUTE nothing USING 1", headers=headers, timeout=10)
    assert answer.json()["error"]["errorName"] == "NOT_FOUND"


def test_a_statement_prepared_on_one_coordinator_executes_on_another(people):
    headers = {"X-Trino-User": "alice"}
    prepared = requests.post(f"{URLS[0]}/v1/statement",
                             data=f"PREPARE by_id FROM SELECT name FROM {people} WHERE id = ?",
                             headers=headers, timeout=10)
    assert prepared.status_code == 200, prepared.text
    assert prepared.json()["updateType"] == "PREPARE"
    name, statement = prepared.headers["X-Trino-Added-Prepare"].split("=", 1)
    assert (name, urllib.parse.unquote_plus(statement)) == ("by_id", f"SELECT name FROM {people} WHERE id = ?")
    # The client sends what it keeps to any coordinator.
    cur = connect(2).cursor()
    cur._request._client_session.prepared_statements["by_id"] = urllib.parse.unquote_plus(statement)
    cur.execute("EXECUTE by_id USING 3")
    assert cur.fetchall() == [["cy"]]
    cur.execute("DEALLOCATE PREPARE by_id")
    cur.fetchall()
    assert "by_id" not in cur._request._client_session.prepared_statements


def test_doubled_quotes_in_an_insert_are_kept():
    run(0, "CREATE TABLE prepared.quotes (q VARCHAR)")
    run(1, "INSERT INTO prepared.quotes VALUES ('a''''b'), ('''')")
    assert sorted(r[0] for r in run(2, "SELECT q FROM prepared.quotes")) == ["'", "a''b"]


def test_doubled_quotes_in_a_create_table_as_are_kept():
    assert run(0, "CREATE TABLE prepared.quoted AS SELECT 'a''''b' AS q") == [[1]]
    assert run(1, "SELECT q FROM prepared.quoted") == [["a''b"]]


def test_describe_input_and_output_of_a_prepared_statement(people):
    conn = connect(0)
    cur = conn.cursor()
    cur.execute(f"PREPARE pick FROM SELECT name, id * 2 AS twice FROM {people} WHERE id = ? AND name <> ?")
    cur.fetchall()
    # Another coordinator describes it: the statement travels with the client.
    other = connect(1)
    other._client_session.prepared_statements = dict(conn._client_session.prepared_statements)
    cur = other.cursor()
    cur.execute("DESCRIBE INPUT pick")
    assert [d[0] for d in cur.description] == ["Position", "Type"]
    assert cur.fetchall() == [[0, "bigint"], [1, "varchar"]]
    cur.execute("DESCRIBE OUTPUT pick")
    assert [d[0] for d in cur.description] == [
        "Column Name", "Catalog", "Schema", "Table", "Type", "Type Size", "Aliased"]
    rows = cur.fetchall()
    assert [(r[0], r[4], r[5]) for r in rows] == [("name", "varchar", 2147483647), ("twice", "bigint", 8)]
    with pytest.raises(trino.exceptions.TrinoUserError):
        cur.execute("DESCRIBE OUTPUT no_such_statement")
        cur.fetchall()
