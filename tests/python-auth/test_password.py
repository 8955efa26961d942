"""Password authentication over HTTPS through the Python `trino` client and plain requests."""

import os

import requests
import trino
from trino.auth import BasicAuthentication

URLS = os.environ["SHOAL_COORDINATORS"].split(",")
CA = os.environ["SHOAL_CA_FILE"]
PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "admin-pass"}


def cursor(index, user, **kwargs):
    host, port = URLS[index % len(URLS)].removeprefix("https://").split(":")
    conn = trino.dbapi.connect(
        host=host,
        port=int(port),
        user=user,
        http_scheme="https",
        auth=BasicAuthentication(user, PASSWORDS[user]),
        verify=CA,
        **kwargs,
    )
    return conn.cursor()


def run(index, user, sql):
    cur = cursor(index, user)
    cur.execute(sql)
    return cur.fetchall(), cur.query_id


def test_without_the_right_credentials_a_client_gets_401():
    url = f"{URLS[0]}/v1/statement"
    headers = {"X-Trino-User": "alice"}
    missing = requests.post(url, data="SELECT 1", headers=headers, verify=CA, timeout=10)
    assert missing.status_code == 401, missing.text
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.post(url, data="SELECT 1", headers=headers, auth=("alice", "nope"), verify=CA, timeout=10)
    assert wrong.status_code == 401, wrong.text
    unknown = requests.post(url, data="SELECT 1", auth=("mallory", "x"), verify=CA, timeout=10)
    assert unknown.status_code == 401, unknown.text
    # Probes and server info stay open, as load balancers and Kubernetes need them.
    assert requests.get(f"{URLS[0]}/v1/info", verify=CA, timeout=10).status_code == 200
    assert requests.get(f"{URLS[0]}/v1/health/ready", verify=CA, timeout=10).status_code == 200


def test_basic_authentication_works_on_every_coordinator():
    for index in range(len(URLS)):
        rows, _ = run(index, "alice", "SELECT 6 * 7")
        assert rows == [[42]]
    rows, _ = run(1, "bob", "SELECT value FROM generate_series(1, 5000) AS t(value)")
    assert [row[0] for row in rows] == list(range(1, 5001))


def test_a_user_cannot_act_as_another():
    answer = requests.post(
        f"{URLS[0]}/v1/statement",
        data="SELECT 1",
        headers={"X-Trino-User": "bob"},
        auth=("alice", PASSWORDS["alice"]),
        verify=CA,
        timeout=10,
    )
    assert answer.status_code == 403, answer.text


def test_users_see_only_their_own_queries_unless_admin():
    _, alice_query = run(0, "alice", "SELECT 'alice only'")
    _, bob_query = run(1, "bob", "SELECT 'bob only'")
    history = "SELECT query_id FROM system.runtime.queries"
    seen_by_alice = {row[0] for row in run(1, "alice", history)[0]}
    assert alice_query in seen_by_alice and bob_query not in seen_by_alice
    seen_by_bob = {row[0] for row in run(0, "bob", history)[0]}
    assert bob_query in seen_by_bob and alice_query not in seen_by_bob
    seen_by_carol = {row[0] for row in run(0, "carol", history)[0]}
    assert {alice_query, bob_query} <= seen_by_carol

    def info(user, query_id):
        return requests.get(
            f"{URLS[-1]}/v1/query/{query_id}",
            auth=(user, PASSWORDS[user]),
            verify=CA,
            timeout=10,
        )

    assert info("alice", alice_query).status_code == 200
    assert info("bob", alice_query).status_code == 403
    assert info("carol", alice_query).json()["session"]["user"] == "alice"
