"""``syncd pipedrive webhooks install|list|remove`` against the Pipedrive emulator, and the
emulator's deliveries reaching the receiver end to end."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from syncd.cli import main
from syncd.config import Config
from syncd.crm import open_source, source_options
from syncd.crm.pipedrive import PipedriveSource
from syncd.http.basic_auth import BasicAuthSecret
from syncd.http.receiver import Receiver
from syncd.push import AccountDirectory
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags
from syncd.store.state_tables import PipedriveMarker
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import User
from syncd_testkit.loopback import free_port

TOKEN_ENV = "SYNCD_TEST_PIPEDRIVE_TOKEN"


@dataclass
class Company:
    emulator: PipedriveEmulator
    ada: User  # the admin whose API token syncd uses
    alice: User
    config: Path
    data: Path
    port: int

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/pipedrive"

    def cli(self, *args: str, capsys: pytest.CaptureFixture[str]) -> Any:
        capsys.readouterr()
        code = main(["--config", str(self.config), "--json", "pipedrive", "webhooks", *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)

    def load(self) -> Config:
        from connectors import provider_options
        from syncd.config import load_config

        return load_config(self.config, provider_options(), crm_sources=source_options())


def seen_at(db: Database, activity_id: int) -> object:
    with db.session() as session:
        return session.scalar(select(PipedriveMarker.seen_at).where(
            PipedriveMarker.activity_id == activity_id))


@pytest.fixture
def company(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            pipedrive_emulator: PipedriveEmulator) -> Company:
    emulator = pipedrive_emulator
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    alice = emulator.add_user("Alice", "alice@acme.test")
    monkeypatch.setenv(TOKEN_ENV, emulator.api_token(ada))
    data, port = tmp_path / "data", free_port()
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{data}"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n'
        'allow_insecure_http = true\n'
        f'[crm]\nkind = "pipedrive"\ncompany_domain = "acme"\napi_token = "env:{TOKEN_ENV}"\n'
        f'api_url = "{emulator.base_url}"\nallow_insecure_http = true\n'
        '[[account]]\nname = "alice-cal"\nprovider = "caldav"\nowner = "alice@acme.test"\n'
        '[account.auth]\nurl = "https://dav.example.com/"\nusername = "alice"\n')
    return Company(emulator, ada, alice, config, data, port)


def test_install_list_and_remove_manage_three_activity_webhooks_with_a_hidden_password(
        company: Company, capsys: pytest.CaptureFixture[str]) -> None:
    made = company.cli("install", capsys=capsys)
    assert sorted(row["action"] for row in made) == ["change", "create", "delete"]
    secret = BasicAuthSecret(company.data, "pipedrive").read()
    assert secret is not None
    hooks = [company.emulator.webhooks.get(row["id"]) for row in made]
    for hook in hooks:
        assert hook is not None and hook.subscription_url == company.hook_url
        assert (hook.event_object, hook.http_auth_user) == ("activity", secret[0])
        assert hook.http_auth_password == secret[1]
    assert (company.data / "webhooks" / "pipedrive.secret").stat().st_mode & 0o077 == 0

    listing = company.cli("list", capsys=capsys)
    assert {row["id"] for row in listing if row["syncd"]} == {row["id"] for row in made}
    assert secret[1] not in json.dumps(listing) + json.dumps(made)

    again = company.cli("install", capsys=capsys)  # replaces, never adds
    assert len(company.emulator.webhooks.list(company.ada)) == 3
    assert all(company.emulator.webhooks.get(row["id"]) is None for row in made)
    renewed = BasicAuthSecret(company.data, "pipedrive").read()
    assert renewed is not None and renewed[1] != secret[1]
    assert {company.emulator.webhooks.get(row["id"]).http_auth_password  # type: ignore[union-attr]
            for row in again} == {renewed[1]}

    gone = company.cli("remove", capsys=capsys)
    assert {row["id"] for row in gone} == {row["id"] for row in again}
    assert company.emulator.webhooks.list(company.ada) == []
    assert BasicAuthSecret(company.data, "pipedrive").read() is None


def test_a_reinstall_whose_cleanup_fails_keeps_the_password_the_new_webhooks_carry(
        company: Company, capsys: pytest.CaptureFixture[str]) -> None:
    # The new webhooks exist once their POSTs succeeded: if deleting the older ones then
    # fails, the receiver must still accept the new ones' deliveries.
    from syncd_testkit.emulators.pipedrive_faults import FaultRule

    company.cli("install", capsys=capsys)
    company.emulator.inject(FaultRule(method="DELETE", path=r"^/v1/webhooks/", status=500,
                                      count=None))
    code = main(["--config", str(company.config), "pipedrive", "webhooks", "install"])
    capsys.readouterr()
    assert code != 0
    secret = BasicAuthSecret(company.data, "pipedrive").read()
    assert secret is not None
    ids = sorted(row["id"] for row in company.emulator.webhooks.list(company.ada))
    assert len(ids) == 6  # the older three could not be deleted
    newest = [company.emulator.webhooks.get(hook_id) for hook_id in ids[-3:]]
    assert {hook.http_auth_password for hook in newest if hook is not None} == {secret[1]}


def test_install_needs_a_public_url_and_a_pipedrive_crm(
        company: Company, capsys: pytest.CaptureFixture[str]) -> None:
    text = company.config.read_text()
    company.config.write_text(text.replace(f'public_url = "http://127.0.0.1:{company.port}"\n',
                                           ""))
    assert main(["--config", str(company.config), "pipedrive", "webhooks", "install"]) == 2
    assert "[http] public_url is not set" in capsys.readouterr().err
    company.config.write_text(text.split("[crm]")[0])
    assert main(["--config", str(company.config), "pipedrive", "webhooks", "list"]) == 2
    assert 'kind = "pipedrive"' in capsys.readouterr().err
    assert company.emulator.webhooks.list(company.ada) == []


def test_the_emulators_deliveries_flag_the_owners_account_and_forged_ones_do_not(
        company: Company, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    company.cli("install", capsys=capsys)
    config = company.load()
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    source = open_source(config.crm_kind, db, config.crm_options)

    def user_id(email: str) -> int | None:
        user = source.user(email)
        return user.id if user is not None else None

    assert isinstance(source, PipedriveSource)
    dirty, woken = DirtyFlags(db), list[set[str]]()
    receiver = Receiver(config, AccountDirectory(lambda: config.accounts, user_id), dirty,
                        woken.append, deleted=source.deletions_hinted)
    receiver.start()
    emulator = company.emulator
    try:
        created = emulator.create_as_user(company.alice, subject="Call Ada",
                                          due_date="2026-03-03", due_time="09:00")
        assert emulator.webhooks.wait_idle() and receiver.hints.settle()
        assert dirty.flagged() == {"alice-cal"}
        assert dirty.take("alice-cal") is not None
        # As if syncd had paired it: its marker was seen alive just now.
        assert source.markers.intend("uid-1", company.alice.id, "f", None)
        assert source.markers.created("uid-1", created["id"])
        assert seen_at(db, created["id"]) is not None

        emulator.edit_as_user(company.ada, created["id"], subject="Call Ada back")
        emulator.delete_as_user(company.ada, created["id"])
        emulator.create_as_user(company.ada, subject="Ada's own")  # no account of Ada's
        assert emulator.webhooks.wait_idle() and receiver.hints.settle()
        assert dirty.flagged() == {"alice-cal"}
        assert seen_at(db, created["id"]) is None  # the next reconciliation asks first
        assert {d.status for d in emulator.webhooks.deliveries} == {200}
        assert receiver.pipedrive.counts["accepted"] == 4
        assert receiver.hints.counts["unknown_user"] == 1

        # Someone else's webhook at syncd's address, without the password: refused.
        dirty.take("alice-cal")
        emulator.webhooks.create(company.ada, {"subscription_url": company.hook_url,
                                               "event_action": "*", "event_object": "*"})
        before = len(emulator.webhooks.deliveries)
        emulator.create_as_user(company.alice, subject="Forged")
        assert emulator.webhooks.wait_idle() and receiver.hints.settle()
        statuses = sorted(d.status or 0 for d in emulator.webhooks.deliveries[before:])
        assert statuses == [200, 401]
        assert receiver.pipedrive.counts["refused"] == 1
        assert dirty.flagged() == {"alice-cal"}  # by syncd's own webhook only
    finally:
        receiver.stop()
        db.close()
