"""A pull facade keeps one client per connection in a process (mappings.connection_clients.shared_client): its
sockets and its token are reused across reads, and a change to the connection (settings, secrets), to the host
allow-list or to the secrets keys builds a new one at once. Secrets stay out of logs all along."""

from __future__ import annotations

import logging
import threading

import pytest

from mappings.actions.connections import do_create_connection, do_update_connection
from mappings.connection_clients import forget_shared_clients, shared_client
from mappings.models import Connection
from mappings.secrets import SecretsKeyError
from tests.connectors.conftest import Answer
from tests.connectors.test_pull_facade import pull_facade

pytestmark = pytest.mark.timeout(120)
PATIENT = {"resourceType": "Patient", "id": "ada", "name": [{"family": "Lovelace", "given": ["Ada"]}]}
CLIENT_SECRET = "client-secret-never-logged-7f3a"
TOKEN = "access-token-never-logged-91c2"


@pytest.fixture(autouse=True)
def _no_kept_clients():
    forget_shared_clients()
    yield
    forget_shared_clients()


@pytest.fixture
def allowed(settings):
    """Allow the hosts a test names as connection hosts."""

    def allow(*hosts: str) -> None:
        settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": list(hosts)}

    return allow


def test_it_keeps_one_client_while_the_connection_is_unchanged(db, allowed) -> None:
    allowed("127.0.0.1:1")
    connection = do_create_connection(acting_user=None, name="kept", base_url="http://127.0.0.1:1/fhir")
    first = shared_client(connection)
    assert shared_client(connection) is first
    # A row read again (another request) is the same connection: same client.
    connection.refresh_from_db()
    assert shared_client(connection) is first


@pytest.mark.parametrize(
    "change",
    [
        {"timeout_seconds": 5.0},
        {"max_retries": 0},
        {"base_url": "http://127.0.0.1:2/fhir"},
        {"auth_mode": "bearer", "secrets": {"token": "another-token"}},
    ],
    ids=["timeout", "retries", "base-url", "auth"],
)
def test_it_builds_a_new_client_when_the_connection_changes(db, allowed, change) -> None:
    allowed("127.0.0.1:1", "127.0.0.1:2")
    connection = do_create_connection(acting_user=None, name="changing", base_url="http://127.0.0.1:1/fhir")
    before = shared_client(connection)
    changed = do_update_connection(connection, acting_user=None, **change)
    after = shared_client(changed)
    assert after is not before
    assert shared_client(changed) is after


def test_it_builds_a_new_client_when_only_a_secret_changes(db, allowed) -> None:
    allowed("127.0.0.1:1")
    connection = do_create_connection(
        acting_user=None, name="token", base_url="http://127.0.0.1:1/fhir", auth_mode="bearer", secrets={"token": "a"}
    )
    assert shared_client(connection).auth.token == "a"
    changed = do_update_connection(connection, acting_user=None, secrets={"token": "b"})
    assert shared_client(changed).auth.token == "b"


def test_it_builds_a_new_client_when_the_allowed_hosts_change(db, allowed) -> None:
    allowed("127.0.0.1:1")
    connection = do_create_connection(acting_user=None, name="hosts", base_url="http://127.0.0.1:1/fhir")
    before = shared_client(connection)
    allowed("127.0.0.1:1", "example.org")
    after = shared_client(connection)
    assert after is not before
    assert after.transport.allowed_hosts == ("127.0.0.1:1", "example.org")


def test_a_replaced_client_closes_every_session_it_held(db, allowed) -> None:
    allowed("127.0.0.1:1", "127.0.0.1:2")
    connection = do_create_connection(acting_user=None, name="closing", base_url="http://127.0.0.1:1/fhir")
    before = shared_client(connection)
    pinned = before.transport.check_host("http://127.0.0.1:1/fhir/metadata")  # the session pinned to that address
    closed: list[object] = []
    for session in (before.transport.session, pinned):
        session.close = lambda session=session: closed.append(session)
    do_update_connection(connection, acting_user=None, base_url="http://127.0.0.1:2/fhir")
    shared_client(Connection.objects.get(pk=connection.pk))
    assert closed == [before.transport.session, pinned]


def test_it_opens_the_secrets_again_when_the_keys_change(db, allowed, settings) -> None:
    allowed("127.0.0.1:1")
    connection = do_create_connection(
        acting_user=None, name="keys", base_url="http://127.0.0.1:1/fhir", auth_mode="bearer", secrets={"token": "a"}
    )
    shared_client(connection)
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SECRETS_KEYS": ["a-different-key-of-32-characters!!"]}
    with pytest.raises(SecretsKeyError):
        shared_client(connection)  # not the kept client: its secrets were opened with the old keys


def test_it_hands_threads_one_client(db, allowed) -> None:
    allowed("127.0.0.1:1")
    connection = do_create_connection(acting_user=None, name="threads", base_url="http://127.0.0.1:1/fhir")
    got, start = [], threading.Barrier(8)

    def take() -> None:
        start.wait()
        got.append(shared_client(connection))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8
    assert len({id(client) for client in got}) == 1


def test_a_pull_facade_fetches_one_token_for_many_reads_and_logs_no_secret(
    client, users, stub, allowed, caplog
) -> None:
    """Through the facade's read path (mappings/facade/live.py): three reads, one token request."""
    allowed(stub.host)
    stub.on("/token", Answer(body={"access_token": TOKEN, "token_type": "bearer", "expires_in": 300}))
    stub.on("/fhir/Patient/ada", Answer(body=PATIENT))
    pull_facade(
        users,
        stub.base,
        auth_mode="client-credentials",
        auth={"client_id": "studio", "token_url": stub.base.replace("/fhir", "/token")},
        secrets={"client_secret": CLIENT_SECRET},
    )
    with caplog.at_level(logging.DEBUG):
        answers = [client.get("/fhir/pull/Patient/ada") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200], answers[0].content
    assert answers[0].json()["name"][0]["family"] == "LOVELACE"  # mapped, as pulled
    assert len(stub.requests_to("/token")) == 1
    reads = stub.requests_to("/fhir/Patient/ada")
    assert len(reads) == 3
    assert {seen.headers.get("Authorization") for seen in reads} == {f"Bearer {TOKEN}"}
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert CLIENT_SECRET not in logged and TOKEN not in logged
    kept = shared_client(Connection.objects.get(name="upstream"))
    assert CLIENT_SECRET not in repr(kept.auth) and TOKEN not in repr(kept.auth)  # nor does the kept client's repr
