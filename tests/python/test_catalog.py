"""The replicated catalog through the Python `trino` client: DDL, writes and reads spread over
the coordinators, concurrent writers, and tables over existing files."""

import os
import threading

import pytest
import trino

URLS = os.environ["SHOAL_COORDINATORS"].split(",")
WAREHOUSE = os.environ["SHOAL_WAREHOUSE"]
EXTERNAL = os.environ["SHOAL_EXTERNAL"]


def run(index, sql):
    host, port = URLS[index % len(URLS)].removeprefix("http://").split(":")
    cur = trino.dbapi.connect(host=host, port=int(port), user="alice").cursor()
    cur.execute(sql)
    return cur.fetchall()


def test_ddl_on_one_insert_on_another_select_on_a_third():
    assert run(0, "CREATE SCHEMA spread") == [[True]]
    run(0, "CREATE TABLE spread.t (id BIGINT, name VARCHAR, price DECIMAL(8,2), day DATE)")
    assert run(1, "INSERT INTO spread.t VALUES (1, 'one', 1.10, DATE '2024-01-01'), (2, 'two', 2.20, DATE '2024-01-02')") == [[2]]
    rows = run(2, "SELECT id, name, CAST(price AS VARCHAR), CAST(day AS VARCHAR) FROM spread.t ORDER BY id")
    assert rows == [[1, "one", "1.10", "2024-01-01"], [2, "two", "2.20", "2024-01-02"]]
    assert run(1, "SHOW TABLES FROM spread") == [["t"]]
    assert ["spread"] in run(2, "SHOW SCHEMAS")
    assert run(2, "CREATE TABLE spread.copy AS SELECT id * 10 AS id FROM spread.t") == [[2]]
    assert run(0, "SELECT sum(id) FROM spread.copy") == [[30]]
    run(1, "DROP TABLE spread.copy")
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        run(2, "SELECT * FROM spread.copy")
    assert caught.value.error_name == "TABLE_NOT_FOUND"


def test_concurrent_inserts_from_two_coordinators_all_land():
    run(0, "CREATE TABLE default.events (writer BIGINT, seq BIGINT)")
    errors = []

    def writer(index):
        try:
            for seq in range(8):
                run(index, f"INSERT INTO events VALUES ({index}, {seq})")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    rows = run(2, "SELECT writer, count(*) FROM events GROUP BY writer ORDER BY writer")
    assert rows == [[0, 8], [1, 8]]


def test_tables_over_existing_csv_and_parquet_files():
    directory = os.path.join(EXTERNAL, "csv")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "part-1.csv"), "w") as f:
        f.write("city,population\nOslo,700000\nBergen,290000\n")
    run(1, f"CREATE TABLE default.cities WITH (format = 'CSV', location = '{os.path.abspath(directory)}/')")
    assert run(2, "SELECT city FROM cities WHERE population > 500000") == [["Oslo"]]

    run(0, "CREATE SCHEMA files")
    run(0, "CREATE TABLE files.source AS SELECT value AS v FROM generate_series(1, 100) AS t(value)")
    assert run(2, "SELECT count(*), max(v) FROM files.source") == [[100, 100]]
    # The operator chooses where external tables may point: not into the warehouse (another
    # table's files), not anywhere else outside catalog.external-locations.
    for location in (WAREHOUSE, os.path.join(EXTERNAL, ".."), "/etc"):
        with pytest.raises(trino.exceptions.TrinoUserError) as caught:
            run(1, f"CREATE TABLE files.again WITH (format = 'PARQUET', location = '{location}/')")
        assert caught.value.error_name == "PERMISSION_DENIED", location
        assert "catalog.external-locations" in caught.value.message


def test_catalog_errors_are_user_errors():
    run(0, "CREATE SCHEMA busy")
    run(0, "CREATE TABLE busy.t (x BIGINT)")
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        run(1, "CREATE SCHEMA busy")
    assert caught.value.error_name == "SCHEMA_ALREADY_EXISTS"
    assert run(1, "CREATE SCHEMA IF NOT EXISTS busy") == [[True]]
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        run(2, "DROP SCHEMA busy")
    assert "non-empty" in caught.value.message
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        run(2, "INSERT INTO busy.t VALUES (1, 2)")
    assert "columns" in caught.value.message
    with pytest.raises(trino.exceptions.TrinoUserError) as caught:
        run(0, "SELECT * FROM nowhere.t")
    assert caught.value.error_type == "USER_ERROR"


def test_show_create_table_prints_trino_ddl_that_creates_the_same_table():
    run(0, "CREATE SCHEMA IF NOT EXISTS ddl_text")
    run(0, 'CREATE TABLE ddl_text.items (id BIGINT, "Odd Name" VARCHAR, price DECIMAL(10,2))')
    [[ddl]] = run(1, "SHOW CREATE TABLE ddl_text.items")
    assert ddl == (
        "CREATE TABLE shoal.ddl_text.items (\n"
        "   id bigint,\n"
        '   "Odd Name" varchar,\n'
        "   price decimal(10,2)\n"
        ")\n"
        "WITH (\n"
        "   format = 'PARQUET'\n"
        ")"
    )
    again = ddl.replace("ddl_text.items", "ddl_text.items_again")
    run(2, again)
    assert run(0, "SHOW CREATE TABLE ddl_text.items_again") == [[again]]


def test_views_are_seen_on_every_coordinator_and_show_create_view_prints_them():
    run(0, "CREATE SCHEMA IF NOT EXISTS view_text")
    run(0, "CREATE TABLE view_text.t AS SELECT * FROM (VALUES (1, 'it''s'), (2, 'b')) AS t(id, name)")
    run(1, "CREATE VIEW view_text.v AS SELECT id, name FROM view_text.t WHERE name <> 'b'")
    assert run(2, "SELECT * FROM view_text.v") == [[1, "it's"]]
    assert run(0, "SHOW CREATE VIEW view_text.v") == [[
        "CREATE VIEW shoal.\"view_text\".\"v\" SECURITY DEFINER AS\n"
        "SELECT id, name FROM view_text.t WHERE name <> 'b'"]]
