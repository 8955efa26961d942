"""SQLAlchemy with the trino dialect, and pandas on top of it, as their users write them:
the inspector, a reflected table, Core selects and inserts, read_sql and to_sql. Objects are
created through one coordinator and used through another."""

import os

import pandas
import pytest
import sqlalchemy
from sqlalchemy import inspect, select, text

URLS = os.environ["SHOAL_COORDINATORS"].split(",")


def engine(index):
    host_port = URLS[index % len(URLS)].removeprefix("http://")
    return sqlalchemy.create_engine(f"trino://alice@{host_port}/shoal/orm")


@pytest.fixture(scope="module")
def created():
    with engine(0).begin() as connection:
        connection.execute(text("CREATE SCHEMA orm"))
        connection.execute(text("CREATE TABLE orm.items (id BIGINT, name VARCHAR, price DOUBLE)"))
        connection.execute(text("INSERT INTO orm.items VALUES (1, 'pen', 1.5), (2, 'ink', 7.25)"))
    return "items"


def test_inspector_lists_tables_and_columns(created):
    inspector = inspect(engine(1))
    assert created in inspector.get_table_names(schema="orm")
    assert "orm" in inspector.get_schema_names()
    columns = {c["name"]: str(c["type"]) for c in inspector.get_columns(created, schema="orm")}
    assert columns == {"id": "BIGINT", "name": "VARCHAR", "price": "DOUBLE"}


def test_reflected_table_select_and_insert(created):
    items = sqlalchemy.Table(created, sqlalchemy.MetaData(), schema="orm", autoload_with=engine(2))
    with engine(2).connect() as connection:
        rows = connection.execute(select(items.c.name).where(items.c.id == 2)).fetchall()
    assert [tuple(r) for r in rows] == [("ink",)]
    with engine(1).begin() as connection:
        connection.execute(items.insert().values(id=3, name="it's", price=0.5))
    with engine(0).connect() as connection:
        rows = connection.execute(select(items.c.id, items.c.name).order_by(items.c.id)).fetchall()
    assert [tuple(r) for r in rows] == [(1, "pen"), (2, "ink"), (3, "it's")]


def test_pandas_read_sql_and_to_sql(created):
    frame = pandas.read_sql("SELECT id, name FROM orm.items WHERE id <= 2 ORDER BY id", engine(1))
    assert frame.to_dict("list") == {"id": [1, 2], "name": ["pen", "ink"]}
    out = pandas.DataFrame({"k": [1, 2, 3], "v": ["a", "b'c", None]})
    out.to_sql("frames", engine(2), schema="orm", index=False, method="multi")
    back = pandas.read_sql("SELECT k, v FROM orm.frames ORDER BY k", engine(0))
    assert back["k"].tolist() == [1, 2, 3]
    assert back["v"].tolist()[:2] == ["a", "b'c"] and back["v"].isna().tolist()[2]


def test_insert_with_a_column_list_fills_the_others_with_null(created):
    with engine(1).begin() as connection:
        connection.execute(text("INSERT INTO orm.items (name, id) VALUES ('cap', 9)"))
    with engine(2).connect() as connection:
        rows = connection.execute(text("SELECT id, name, price FROM orm.items WHERE id = 9")).fetchall()
        assert [tuple(r) for r in rows] == [(9, "cap", None)]
        with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
            connection.execute(text("INSERT INTO orm.items (nope) VALUES (1)"))
        assert "COLUMN_NOT_FOUND" in str(caught.value)


def test_metadata_tables_tools_read(created):
    with engine(0).connect() as connection:
        catalogs = connection.execute(text("SELECT catalog_name FROM system.metadata.catalogs ORDER BY 1")).fetchall()
        assert [r[0] for r in catalogs] == ["shoal", "system"]
        views = connection.execute(text("SELECT name FROM system.metadata.materialized_views")).fetchall()
        assert views == []
        types = connection.execute(text(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'orm' AND table_name = 'items' ORDER BY ordinal_position")).fetchall()
        assert [tuple(r) for r in types] == [("id", "bigint", "YES"), ("name", "varchar", "YES"), ("price", "double", "YES")]
