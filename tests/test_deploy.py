"""The deployment files: the lock covers pyproject's runtime dependencies with hashes, the
image installs from it, pins its base and checks its health, compose runs two replicas on
PostgreSQL with secrets as files, and the systemd unit is hardened. The image's health
check itself is run against a live listener."""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from syncd.config import Config, HttpConfig
from syncd.healthcheck import healthz_url
from syncd.http.ops import DatabaseProbe, Ops, metrics_secret
from syncd.http.receiver import Receiver
from syncd.metrics import Metrics
from syncd.push import AccountDirectory
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "requirements.lock"


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, its hashes), from the lock."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *rest = line.split()
        name, sep, version = spec.partition("==")
        assert sep, f"not pinned: {spec}"
        hashes = [h.removeprefix("--hash=sha256:") for h in rest if h.startswith("--hash=")]
        found[canonicalize_name(name)] = (version, hashes)
    return found


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    deps = project["project"]["dependencies"] + project["project"]["optional-dependencies"][
        "postgres"]
    return [Requirement(d) for d in deps] + [
        Requirement(d) for d in project["build-system"]["requires"]]


def test_the_lock_pins_every_runtime_dependency_within_its_specifier_with_hashes() -> None:
    lock = locked()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in {LOCK.name}: pip-compile again"
        version, _ = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name}=={version} does not satisfy {requirement.specifier}")
    for name, (version, hashes) in lock.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
        assert re.fullmatch(r"[0-9A-Za-z.+!_-]+", version), name


def test_the_image_pins_its_base_installs_from_the_lock_and_checks_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base.group(1))
    assert "COPY deploy/requirements.lock" in dockerfile
    assert re.search(r"pip install [^\n]*--require-hashes[^\n]*-r requirements\.lock",
                     dockerfile)
    # syncd itself: no dependency resolved outside the lock, no unpinned build tools
    assert re.search(r"pip install [^\n]*--no-deps --no-build-isolation \.", dockerfile)
    assert 'CMD ["python", "-m", "syncd.healthcheck"]' in dockerfile
    assert re.search(r"^USER syncd$", dockerfile, flags=re.MULTILINE)


@functools.cache
def _rehearsal() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "rehearse_image", ROOT / "deploy" / "rehearse_image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_image_rehearsal_reads_every_install_step_of_the_dockerfile() -> None:
    """deploy/rehearse_image.py plays the Dockerfile's own pip steps where Docker cannot
    run; it must find them all (a step it missed would pass unrehearsed)."""
    rehearsal = _rehearsal()
    instrs = rehearsal.instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert rehearsal.base_python(instrs) == "3.11"
    pips = [args for ins in instrs if ins.keyword == "RUN"
            for args in rehearsal.pip_commands(ins.rest)[0]]
    assert pips == [
        ["--no-cache-dir", "--require-hashes", "--no-deps", "-r", "requirements.lock"],
        ["--no-cache-dir", "--no-deps", "--no-build-isolation", "."]]
    copied = [ins.rest for ins in instrs if ins.keyword == "COPY"]
    assert "deploy/requirements.lock ./" in copied


def test_the_image_rehearsal_joins_continued_lines_and_keeps_container_steps_apart(
        ) -> None:
    rehearsal = _rehearsal()
    instrs = rehearsal.instructions(
        "# c\nFROM python:3.12-slim@sha256:00\nRUN pip install a \\\n"
        "    # inside\n    b && useradd x\nENTRYPOINT [\"syncd\"]\n")
    assert [i.keyword for i in instrs] == ["FROM", "RUN", "ENTRYPOINT"]
    assert rehearsal.base_python(instrs) == "3.12"
    assert rehearsal.pip_commands(instrs[1].rest) == ([["a", "b"]], ["useradd x"])
    assert rehearsal._exec_form(instrs[2].rest) == ["syncd"]


def test_compose_runs_two_replicas_on_postgresql_with_secrets_in_files() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    syncd = services["syncd"]
    assert syncd["deploy"]["replicas"] == 2
    assert syncd["depends_on"]["db"]["condition"] == "service_healthy"
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            assert "PASSWORD" not in key or key.endswith("_FILE"), key
            assert "://" not in str(value) or "@" not in str(value), key  # no URL secret
    assert all("file" in s for s in compose["secrets"].values())
    assert set(syncd["secrets"]) == {"database_url", "tls_cert", "tls_key"}
    config = tomllib.loads((ROOT / "deploy/compose/syncd.toml").read_text(encoding="utf-8"))
    assert config["syncd"]["replica"] is True
    assert config["syncd"]["database"] == "file:/run/secrets/database_url"
    assert config["http"]["certificate"] and config["http"]["private_key"]


def test_the_systemd_unit_is_hardened() -> None:
    unit = (ROOT / "deploy" / "syncd.service").read_text(encoding="utf-8")
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.MULTILINE))
    assert settings["User"] == "syncd"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["PrivateTmp"] == "yes"
    assert settings["ReadWritePaths"] == "/var/lib/syncd"
    assert settings["StateDirectoryMode"] == "0700"
    assert settings["CapabilityBoundingSet"] == ""
    assert "LoadCredential" in settings  # the database URL is not in the unit


@pytest.mark.parametrize(("http", "url"), [
    ({}, None),
    ({"listen": "not an address"}, None),
    ({"listen": 8765}, None),
    ({"listen": "127.0.0.1:8765"}, "http://127.0.0.1:8765/healthz"),
    ({"listen": "0.0.0.0:8765", "certificate": "c", "private_key": "k"},
     "https://127.0.0.1:8765/healthz"),
    ({"listen": "[::]:9000"}, "http://[::1]:9000/healthz"),
])
def test_the_health_check_asks_the_listener_on_loopback(http: dict[str, object],
                                                         url: str | None) -> None:
    assert healthz_url(http) == url


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Receiver, dict[str, bool]]]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    config = Config(data_dir=str(tmp_path / "data"),
                    http=HttpConfig(listen="127.0.0.1:8765"))
    alive = {"alive": True}
    ops = Ops(Metrics(lambda: ()), metrics_secret(config.data_path),
              alive=lambda: alive["alive"], stopping=lambda: False,
              probe=DatabaseProbe(db.ping))
    receiver = Receiver(config, AccountDirectory(lambda: (), lambda _e: None), DirtyFlags(db),
                        lambda _n: None, port=0, ops=ops)
    receiver.start()
    try:
        yield receiver, alive
    finally:
        receiver.stop()
        db.close()


def healthcheck(config: Path | None) -> int:
    args = [sys.executable, "-m", "syncd.healthcheck"] + ([str(config)] if config else [])
    return subprocess.run(args, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"}).returncode


def test_the_image_health_check_passes_only_while_healthz_answers_200(
        tmp_path: Path, listener: tuple[Receiver, dict[str, bool]]) -> None:
    receiver, alive = listener
    config = tmp_path / "syncd.toml"
    config.write_text(f'[http]\nlisten = "127.0.0.1:{receiver.server.port}"\n')
    assert healthcheck(config) == 0
    alive["alive"] = False  # the scheduler stopped: 503
    assert healthcheck(config) == 1
    receiver.stop()  # nothing listens
    assert healthcheck(config) == 1
    config.write_text("[syncd]\n")  # no listener configured (the default image)
    assert healthcheck(config) == 0
    assert healthcheck(None) == 0
    config.write_text("[http\n")
    assert healthcheck(config) == 1
