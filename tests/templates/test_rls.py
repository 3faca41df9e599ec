"""Row-level security, exercised as the CRM app runs: a password login as the tenant's app role with
app.user_id / app.role set. Owner, team and admins see a record; private records only owner and admins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.templates.support import TENANT_DB, Crm, TenantSchema, names


@dataclass
class Org:
    tenant: TenantSchema
    crm: Crm
    admin: uuid.UUID
    alice: uuid.UUID  # manager, team East
    bob: uuid.UUID  # member, team East
    carol: uuid.UUID  # member, team East
    dave: uuid.UUID  # member, team West
    eve: uuid.UUID  # member of East, deactivated

    def as_(self, user: uuid.UUID, role: str) -> psycopg.Connection[Any]:
        return self.tenant.app(user, role)


@pytest.fixture
def org(tenant: TenantSchema) -> Org:
    crm = Crm(tenant.admin())
    admin = crm.user("admin@acme.test", "admin")
    alice = crm.user("alice@acme.test", "manager")
    bob = crm.user("bob@acme.test")
    carol = crm.user("carol@acme.test")
    dave = crm.user("dave@acme.test")
    eve = crm.user("eve@acme.test", active=False)
    crm.team("East", alice, bob, carol, eve)
    crm.team("West", dave)
    crm.company(bob, "Bob Co")
    crm.company(bob, "Bob Secret", private=True)
    crm.company(carol, "Carol Co")
    crm.company(dave, "Dave Co")
    return Org(tenant, crm, admin, alice, bob, carol, dave, eve)


def companies(conn: psycopg.Connection[Any]) -> list[str]:
    return names(conn, "SELECT name FROM companies ORDER BY name")


@TENANT_DB
def test_records_are_visible_to_owner_team_and_admins_and_private_ones_to_owner_and_admins(org: Org) -> None:
    assert companies(org.as_(org.bob, "member")) == ["Bob Co", "Bob Secret", "Carol Co"]
    assert companies(org.as_(org.carol, "member")) == ["Bob Co", "Carol Co"]  # team mate: not the private one
    assert companies(org.as_(org.alice, "manager")) == ["Bob Co", "Carol Co"]  # managers neither
    assert companies(org.as_(org.dave, "member")) == ["Dave Co"]  # another team
    assert companies(org.as_(org.admin, "admin")) == ["Bob Co", "Bob Secret", "Carol Co", "Dave Co"]
    # Leaving the team ends the sharing at once.
    org.crm.conn.execute("DELETE FROM team_members WHERE user_id = %s", [org.carol])
    assert companies(org.as_(org.carol, "member")) == ["Carol Co"]


@TENANT_DB
def test_a_session_without_a_complete_matching_identity_sees_nothing(org: Org) -> None:
    assert companies(org.tenant.app()) == []  # no app.user_id
    assert companies(org.tenant.app(org.bob)) == []  # no app.role
    assert companies(org.as_(org.bob, "admin")) == []  # claims a role the user does not have
    assert companies(org.as_(org.eve, "member")) == []  # deactivated
    assert companies(org.as_(uuid.uuid4(), "admin")) == []  # not a user of this tenant
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        org.tenant.app().execute("SET app.user_id = 'not-a-uuid'; SET app.role = 'admin'; SELECT * FROM companies")


@TENANT_DB
def test_members_write_their_own_records_managers_their_teams_admins_all(org: Org) -> None:
    carol, alice, bob = org.as_(org.carol, "member"), org.as_(org.alice, "manager"), org.as_(org.bob, "member")
    # A team mate may read Bob Co but not change it.
    assert carol.execute("UPDATE companies SET industry = 'x' WHERE name = 'Bob Co'").rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        carol.execute("INSERT INTO companies (owner_id, name) VALUES (%s, 'For Bob')", [org.bob])
    carol.execute("INSERT INTO companies (owner_id, name) VALUES (%s, 'Carol Two')", [org.carol])
    # The team's manager may change and reassign within the team, not to another team.
    assert alice.execute("UPDATE companies SET industry = 'Retail' WHERE name = 'Bob Co'").rowcount == 1
    alice.execute("INSERT INTO companies (owner_id, name) VALUES (%s, 'Assigned to Bob')", [org.bob])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        alice.execute("UPDATE companies SET owner_id = %s WHERE name = 'Bob Co'", [org.dave])
    assert alice.execute("DELETE FROM companies WHERE name = 'Dave Co'").rowcount == 0
    # A member cannot hand a record over either.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        bob.execute("UPDATE companies SET owner_id = %s WHERE name = 'Bob Co'", [org.carol])
    assert org.as_(org.admin, "admin").execute("DELETE FROM companies WHERE name = 'Dave Co'").rowcount == 1
    state = org.crm.conn.execute("SELECT name, owner_id, industry FROM companies ORDER BY name").fetchall()
    assert state == [
        ("Assigned to Bob", org.bob, ""),
        ("Bob Co", org.bob, "Retail"),
        ("Bob Secret", org.bob, ""),
        ("Carol Co", org.carol, ""),
        ("Carol Two", org.carol, ""),
    ]


@TENANT_DB
def test_linked_records_are_hidden_with_the_record_they_belong_to(org: Org) -> None:
    secret_deal = org.crm.deal(org.bob, "Secret renewal", private=True)
    open_deal = org.crm.deal(org.bob, "Open renewal")
    for deal, subject in ((secret_deal, "Pricing call"), (open_deal, "Kick-off call")):
        # Carol logged both calls herself, but one is about a deal she may not see.
        org.crm.conn.execute(
            "INSERT INTO activities (owner_id, activity_type, subject, deal_id) VALUES (%s, 'call', %s, %s)",
            [org.carol, subject, deal],
        )
        org.crm.conn.execute(
            "INSERT INTO notes (owner_id, body, deal_id) VALUES (%s, %s, %s)", [org.carol, subject, deal]
        )
    carol = org.as_(org.carol, "member")
    assert names(carol, "SELECT subject FROM activities") == ["Kick-off call"]
    assert names(carol, "SELECT body FROM notes") == ["Kick-off call"]
    assert names(carol, "SELECT count(*) FROM deal_stage_history") == [1]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        carol.execute("INSERT INTO tasks (owner_id, title, deal_id) VALUES (%s, 'Chase', %s)", [org.carol, secret_deal])
    bob = org.as_(org.bob, "member")
    assert sorted(names(bob, "SELECT subject FROM activities")) == ["Kick-off call", "Pricing call"]
    assert names(bob, "SELECT count(*) FROM deal_stage_history") == [2]
    assert names(org.as_(org.dave, "member"), "SELECT count(*) FROM activities") == [0]
    # Views run with the caller's rights: the pipeline board of Carol has one deal, the admin's two.
    board = "SELECT coalesce(sum(deal_count), 0) FROM pipeline_summary WHERE stage_name = 'Qualification'"
    assert names(carol, board) == [1]
    assert names(org.as_(org.admin, "admin"), board) == [2]


@TENANT_DB
def test_users_edit_their_profile_but_only_admins_change_roles_and_hashes_stay_hidden(org: Org) -> None:
    bob = org.as_(org.bob, "member")
    assert bob.execute("UPDATE crm_users SET full_name = 'Robert' WHERE id = %s", [org.bob]).rowcount == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a CRM admin may change the role"):
        bob.execute("UPDATE crm_users SET role = 'admin' WHERE id = %s", [org.bob])
    assert bob.execute("UPDATE crm_users SET full_name = 'Hacked' WHERE id = %s", [org.carol]).rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        bob.execute("INSERT INTO crm_users (email, role) VALUES ('new@acme.test', 'admin')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table crm_users"):
        bob.execute("SELECT password_hash FROM crm_users")
    # Passwords go through the two functions: self or admin may set, login reads the active user's hash.
    assert names(bob, "SELECT crm_user_set_password(%s, 'pbkdf2$bob')", [org.bob]) == [True]
    assert names(bob, "SELECT crm_user_set_password(%s, 'pbkdf2$evil')", [org.carol]) == [False]
    admin = org.as_(org.admin, "admin")
    assert names(admin, "SELECT crm_user_set_password(%s, 'pbkdf2$carol')", [org.carol]) == [True]
    assert admin.execute("UPDATE crm_users SET role = 'manager' WHERE id = %s", [org.bob]).rowcount == 1
    login = org.tenant.app()  # before login the session has no identity
    assert login.execute("SELECT id, role, password_hash FROM crm_user_login('BOB@acme.test')").fetchall() == [
        (org.bob, "manager", "pbkdf2$bob")
    ]
    assert login.execute("SELECT * FROM crm_user_login('eve@acme.test')").fetchall() == []  # deactivated
    assert org.crm.conn.execute(
        "SELECT full_name, role, password_hash FROM crm_users WHERE id = ANY(%s) ORDER BY email", [[org.bob, org.carol]]
    ).fetchall() == [("Robert", "manager", "pbkdf2$bob"), ("Carol", "member", "pbkdf2$carol")]


@TENANT_DB
def test_the_activity_log_records_changes_and_is_append_only(org: Org) -> None:
    bob = org.as_(org.bob, "member")
    bob.execute("UPDATE companies SET name = 'Bob & Sons', industry = 'Tools' WHERE name = 'Bob Co'")
    entry = bob.execute(
        "SELECT actor_id, action, table_name, changes FROM activity_log WHERE action = 'update'"
    ).fetchall()
    assert entry == [(org.bob, "update", "companies", {"name": ["Bob Co", "Bob & Sons"], "industry": ["", "Tools"]})]
    # Others' entries stay hidden, except from admins.
    assert names(org.as_(org.carol, "member"), "SELECT count(*) FROM activity_log") == [0]
    assert names(org.as_(org.admin, "admin"), "SELECT count(*) FROM activity_log WHERE action = 'insert'") == [4]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table activity_log"):
        bob.execute("DELETE FROM activity_log")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        bob.execute("INSERT INTO activity_log (actor_id, action) VALUES (%s, 'export')", [org.carol])
    bob.execute("INSERT INTO activity_log (actor_id, action) VALUES (%s, 'export.contacts')", [org.bob])
    # Not even the database superuser edits history.
    for statement in ("UPDATE activity_log SET action = 'x'", "DELETE FROM activity_log", "TRUNCATE activity_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="activity_log is append-only"):
            org.crm.conn.execute(statement)
    assert names(org.crm.conn, "SELECT count(*) FROM activity_log") == [6]


@TENANT_DB
def test_private_channels_and_personal_notifications(org: Org) -> None:
    bob, carol, dave = org.as_(org.bob, "member"), org.as_(org.carol, "member"), org.as_(org.dave, "member")
    channel = names(
        bob,
        "INSERT INTO channels (name, slug, visibility, created_by) VALUES ('Deal room', 'deal-room', 'private', %s)"
        " RETURNING id",
        [org.bob],
    )[0]
    bob.execute("INSERT INTO channel_members (channel_id, user_id, role) VALUES (%s, %s, 'owner')", [channel, org.bob])
    bob.execute("INSERT INTO channel_members (channel_id, user_id) VALUES (%s, %s)", [channel, org.carol])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        dave.execute("INSERT INTO channel_members (channel_id, user_id) VALUES (%s, %s)", [channel, org.dave])
    message = names(
        carol,
        "INSERT INTO messages (channel_id, author_id, body) VALUES (%s, %s, 'Price agreed @bob') RETURNING id",
        [channel, org.carol],
    )[0]
    carol.execute(
        "INSERT INTO mentions (mentioned_user_id, created_by, message_id, channel_id) VALUES (%s, %s, %s, %s)",
        [org.bob, org.carol, message, channel],
    )
    carol.execute(
        "INSERT INTO notifications (recipient_id, actor_id, kind, title, record_table, record_id)"
        " VALUES (%s, %s, 'mention', 'Carol mentioned you', 'messages', %s)",
        [org.bob, org.carol, message],
    )
    assert names(dave, "SELECT count(*) FROM channels") == [0]
    assert names(dave, "SELECT count(*) FROM messages") == [0]
    assert names(dave, "SELECT count(*) FROM mentions") == [0]
    assert names(bob, "SELECT body FROM messages") == ["Price agreed @bob"]
    assert names(org.as_(org.admin, "admin"), "SELECT name FROM channels") == ["Deal room"]
    # The unread counter, then the bell: notifications are the recipient's alone.
    assert bob.execute("SELECT channel_id, unread_count FROM channel_unread_counts").fetchall() == [(channel, 1)]
    assert names(carol, "SELECT count(*) FROM notifications") == [0]
    assert names(bob, "SELECT title FROM notifications WHERE read_at IS NULL") == ["Carol mentioned you"]
    assert names(bob, "SELECT notifications_mark_read()") == [1]
    assert names(bob, "SELECT count(*) FROM notifications WHERE read_at IS NULL") == [0]
    bob.execute(
        "INSERT INTO read_states (user_id, channel_id, last_read_message_id) VALUES (%s, %s, %s)",
        [org.bob, channel, message],
    )
    assert bob.execute("SELECT unread_count FROM channel_unread_counts").fetchall() == [(0,)]
