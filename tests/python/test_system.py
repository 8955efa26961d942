"""System tables and coordinator state through the Python `trino` client."""

import os

import pytest
import requests
import trino

from waiting import wait_for

URLS = os.environ["SHOAL_COORDINATORS"].split(",")
SECRET = os.environ["SHOAL_SECRET"]


def cursor(index):
    host, port = URLS[index % len(URLS)].removeprefix("http://").split(":")
    return trino.dbapi.connect(host=host, port=int(port), user="dave").cursor()


def run(index, sql):
    cur = cursor(index)
    cur.execute(sql)
    return cur.fetchall()


def test_query_history_is_readable_from_every_coordinator():
    cur = cursor(0)
    cur.execute("SELECT 'remember me'")
    cur.fetchall()
    query_id = cur.query_id
    for index in range(len(URLS)):
        rows = run(index, f"SELECT state, \"user\", query, rows FROM system.runtime.queries WHERE query_id = '{query_id}'")
        assert rows == [["FINISHED", "dave", "SELECT 'remember me'", 1]], (index, rows)
    failed = cursor(1)
    with pytest.raises(trino.exceptions.TrinoUserError):
        failed.execute("SELECT 1/0")
        failed.fetchall()
    rows = run(2, f"SELECT state, error_code FROM system.runtime.queries WHERE query_id = '{failed.query_id}'")
    assert rows == [["FAILED", "DIVISION_BY_ZERO"]], rows


def test_nodes_and_coordinators_tables():
    assert len(run(1, "SELECT node_id FROM system.runtime.nodes WHERE coordinator")) == len(URLS)
    def synchronized():
        rows = run(2, "SELECT node_id, raft_role, term, matched_index, lag, summary_state, detail_state, last_contact, client_url"
                      " FROM system.runtime.coordinators ORDER BY node_id")
        return rows if all(row[5] == "Synchronized" for row in rows) else None
    rows = wait_for(synchronized, 20, "every coordinator Synchronized")
    assert [row[0] for row in rows] == list(range(1, len(URLS) + 1))
    assert sorted(row[1] for row in rows).count("leader") == 1
    assert all(row[5] == "Synchronized" for row in rows), rows
    assert {row[8] for row in rows} == set(URLS)


def test_a_coordinator_in_backup_takes_no_new_queries():
    admin = f"{URLS[1]}/v1/admin/state"
    headers = {"x-shoal-cluster-secret": SECRET}
    assert requests.post(admin, json={"state": "backup"}, headers=headers).json()["state"] == "backup"
    try:
        with pytest.raises(trino.exceptions.TrinoQueryError) as caught:
            run(1, "SELECT 1")
        assert caught.value.error_name == "SERVER_SHUTTING_DOWN"
        assert run(2, "SELECT 2") == [[2]]
    finally:
        requests.post(admin, json={"state": "active"}, headers=headers)
    assert run(1, "SELECT 3") == [[3]]


def test_the_system_catalog_can_be_the_session_default():
    host, port = URLS[0].removeprefix("http://").split(":")
    cur = trino.dbapi.connect(host=host, port=int(port), user="erin", catalog="system", schema="runtime").cursor()
    cur.execute("SELECT count(*) FROM nodes WHERE coordinator")
    assert cur.fetchall() == [[len(URLS)]]
    cur.execute("SELECT count(*) FROM nodes WHERE NOT coordinator")
    assert cur.fetchall() == [[2]]
