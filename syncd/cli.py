"""The ``syncd`` command.

Exit codes: 0 success, 1 runtime errors, 2 usage or configuration errors, 3 a sync that
skipped an account needing attention (see the README). No traceback
reaches the terminal unless ``--debug`` is given; ``syncd.report`` words every error.
Command groups live in their own modules, which build their commands' parsers:
``syncd.crm.builtin.cli`` (activities, types, persons, organizations, deals, import),
``syncd.cli_sync`` (sync, run, status), ``syncd.cli_admin`` (conflicts, quarantine,
purge), ``syncd.cli_auth`` (provider sign-in), ``syncd.cli_pipedrive`` (its webhooks) and
the others :data:`COMMANDS` names; a module is imported only when one of its commands is
given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd import __version__

# syncd's own modules are imported where they are used: ``syncd --help`` needs none of
# them, and a short command's time is nearly all imports (issue 16 item 5).
if TYPE_CHECKING:
    from syncd.config import Config
    from syncd.errors import ConfigProblem

Handler = Callable[[argparse.Namespace, "App"], int]


class App:
    """What a command needs: the config, the database and an output channel.

    Everything is opened lazily, so ``syncd config check`` never touches a database and
    ``--help`` never reads a file.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))

    @cached_property
    def config(self) -> Config:
        return self.load_config()

    def load_config(self, resolve: bool = False) -> Config:
        """The config from ``--config`` (or $SYNCD_CONFIG), checked against every
        connector's declared options; ``resolve`` also reads each secret (config check)."""
        import dataclasses

        from syncd.config import Config, load_config

        path = self.args.config or os.environ.get("SYNCD_CONFIG") or None
        if path is None:  # the embedded default: no options to check (nor to import)
            config = Config()
        else:
            from connectors import provider_options
            from syncd.crm import source_options

            config = load_config(path, provider_options(), resolve=resolve,
                                 crm_sources=source_options())
        data_dir = self.args.data_dir or os.environ.get("SYNCD_DATA_DIR")
        if data_dir:
            config = dataclasses.replace(config, data_dir=data_dir)
        return config

    @cached_property
    def db(self) -> Any:
        from syncd.store.db import Database

        return Database(self.config.database_url)

    @cached_property
    def quick(self) -> Any:
        """The database through sqlite3 or psycopg alone (:mod:`syncd.store.lite`), so
        that a short command imports no SQLAlchemy; None when the full store must open it
        (a URL read only by SQLAlchemy, a database to create or migrate)."""
        from syncd.store.lite import open_quick

        return open_quick(self.config.database_url)

    def close(self) -> None:
        """Close the quick path's connection, if one was opened (a PostgreSQL server
        is told goodbye rather than left to notice the dropped socket)."""
        if self.__dict__.get("quick") is not None:
            self.__dict__["quick"].close()

    @cached_property
    def store(self) -> Any:
        from syncd.crm.builtin.activities import ActivityStore

        return ActivityStore(self.db)

    def emit(self, data: Any, text: str | None = None) -> None:
        """Print ``data`` as JSON with ``--json``, else ``text`` (or a plain rendering)."""
        from syncd.text import printable

        if self.json:
            print(json.dumps(to_jsonable(data), indent=2, sort_keys=True))
        else:
            print(printable(text if text is not None else render_plain(data)))


def to_jsonable(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def render_plain(value: Any) -> str:
    data = to_jsonable(value)
    if isinstance(data, list):
        return "\n".join(render_plain(v) for v in data) if data else "(none)"
    if isinstance(data, dict):
        return "  ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "", [], ()))
    return str(data)


def _config_check(args: argparse.Namespace, app: App) -> int:
    # Everything the runtime would refuse, at once: secrets are read (never shown), and
    # files that 'syncd run' would find open to others are named with their chmod.
    from syncd.errors import ConfigError
    from syncd.private import exposed

    config = app.load_config(resolve=True)
    found = exposed(config)
    if found:
        raise ConfigError(problems=[_exposed(config, path, mode) for path, mode in found])
    names = ", ".join(a.name for a in config.accounts) or "none"
    teams = ", ".join(f"{t.name} ({', '.join(t.owners)})" for t in config.teams)
    text = f"{config.source}: OK. Accounts: {names}." if config.serves_accounts else \
        f"{config.source}: OK. Accounts: none (embedded default)."
    app.emit(
        {"file": config.source, "accounts": [a.name for a in config.accounts],
         "teams": {t.name: list(t.owners) for t in config.teams}, "ok": True},
        text + (f" Teams: {teams}." if teams else ""),
    )
    return 0


def _config_options(args: argparse.Namespace, app: App) -> int:
    """Each provider's ``[account.auth]`` options, as its connector declares them."""
    from connectors import provider_options
    from syncd.config import type_name

    declared = provider_options()
    require(args.provider in (None, *declared),
            f"unknown provider {args.provider!r} (one of: {', '.join(sorted(declared))})")
    rows, lines = [], []
    for provider, schema in sorted(declared.items()):
        if args.provider not in (None, provider):
            continue
        lines.append(f"[account.auth] of provider = \"{provider}\":")
        for key, opt in schema.options.items():
            kind = "env:NAME or file:PATH" if opt.secret else type_name(opt.type)
            extra = "required" if opt.required else (
                f"default {opt.default!r}" if opt.default is not None else "optional")
            rows.append({"provider": provider, "option": key, "type": kind, "required":
                         opt.required, "default": opt.default, "help": opt.help})
            lines.append(f"  {key} ({kind}; {extra}): {opt.help or opt.expected}")
    app.emit(rows, "\n".join(lines))
    return 0


def _exposed(config: Config, path: str, mode: str) -> ConfigProblem:
    """A kept file or folder others may open, under the option that places it."""
    from syncd.errors import ConfigProblem

    where = Path(path)
    log = config.logging.file
    key = ("logging.file" if log and Path(log).expanduser() == where
           else "syncd.data_dir" if where.is_relative_to(config.data_path) else "syncd.database")
    fix = f"chmod {'700' if where.is_dir() else '600'} {path}"
    return ConfigProblem(config.source, key, f"places {path} where other users can open it "
                         f"(mode {mode})", f"{fix} (syncd refuses to start until then)")


#: The top-level commands in the order ``syncd --help`` lists them: the name, its line in
#: that list, and the function (``module:function``) that adds its parser, with any
#: siblings of the same module. A command's module is imported and its parser built only
#: when it is the command given: a short command's time is nearly all imports (issue 16
#: item 5), so ``syncd status`` never builds ``activity add``'s options.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("config", "configuration commands", "syncd.cli:register_config"),
    ("user", "CRM users (activity owners)", "syncd.crm.builtin.cli:register_users"),
    ("type", "activity types", "syncd.crm.builtin.cli:register_types"),
    ("person", "contact persons", "syncd.crm.builtin.cli:register_items"),
    ("org", "organizations", "syncd.crm.builtin.cli:register_items"),
    ("deal", "deals", "syncd.crm.builtin.cli:register_items"),
    ("activity", "add, list, show, edit, complete and delete activities",
     "syncd.crm.builtin.cli:register_activity"),
    ("import", "import activities from a JSON or CSV file",
     "syncd.crm.builtin.cli:register_import"),
    ("sync", "run one sync cycle and print what it did", "syncd.cli_sync:register"),
    ("run", "run the daemon (embedded calendar server if no accounts)",
     "syncd.cli_sync:register"),
    ("status", "each account's last run, conflicts and quarantine", "syncd.cli_sync:register"),
    ("resume", "let a paused or flagged account sync again (after checking why)",
     "syncd.cli_sync:register"),
    ("conflicts", "fields changed on both sides: both values, the winner, when",
     "syncd.cli_admin:register"),
    ("quarantine", "items set aside, with reasons, versions and attempts",
     "syncd.cli_admin:register"),
    ("purge", "remove activities deleted longer ago than the retention period",
     "syncd.cli_admin:register"),
    ("auth", "authorise syncd to use an account's calendar", "syncd.cli_auth:register"),
    ("pipedrive", "Pipedrive as the CRM", "syncd.cli_pipedrive:register"),
    ("verify", "audit each account: duplicates, orphans, drift, missing events, notes found "
               "in events (read-only unless --repair)", "syncd.cli_verify:register"),
    ("booking", "public booking pages (/book/<token>)", "syncd.cli_booking:register"),
    ("agenda", "an owner's activities and calendar events per day, merged, with double "
               "bookings flagged", "syncd.cli_availability:register"),
    ("availability", "an owner's free slots inside their working hours",
     "syncd.cli_availability:register"),
    ("admin", "safety valves: rotate-key (re-encrypt stored tokens with the first "
              "state_key)", "syncd.cli_safety:register"),
)


class Commands(argparse._SubParsersAction):
    """The top-level commands: each listed by name and help line, its parser built (and
    its module imported) only when argparse reaches it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where: dict[str, str] = {}
        # What argparse checks a command name against and lists in its error, in order:
        # the names, before their parsers exist.
        self.choices = self.where

    def add_command(self, name: str, help: str, where: str) -> None:
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), help))
        self.where[name] = where

    def parser(self, name: str) -> argparse.ArgumentParser:
        """The command's parser, built by its module's function on first use."""
        if name not in self._name_parser_map:
            module, _, function = self.where[name].partition(":")
            built = argparse._SubParsersAction(option_strings=[], prog=self._prog_prefix,
                                               parser_class=self._parser_class)
            getattr(importlib.import_module(module), function)(built)
            self._name_parser_map[name] = built._name_parser_map[name]
        parser: argparse.ArgumentParser = self._name_parser_map[name]
        return parser

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        self.parser(values[0])
        super().__call__(parser, namespace, values, option_string)


def register_config(sub: Any) -> None:
    """``syncd config`` and its actions."""
    cfg = sub.add_parser("config")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    check = cfg_sub.add_parser(
        "check", help="validate the config and read its secrets, without touching any provider")
    check.set_defaults(handler=_config_check)
    options = cfg_sub.add_parser("options", help="each provider's [account.auth] options")
    options.add_argument("provider", nargs="?", help="only this provider")
    options.set_defaults(handler=_config_options)


def build_parser() -> argparse.ArgumentParser:
    """The ``syncd`` parser; each command's own parser is built when it is given
    (:class:`Commands`)."""
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps CRM activities and their owners' calendars in step, both ways.",
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", help="TOML config file (default: $SYNCD_CONFIG, else built-in)")
    parser.add_argument("--data-dir", help="data directory (overrides the config)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action=Commands)
    assert isinstance(sub, Commands)
    for name, help, where in COMMANDS:
        sub.add_command(name, help, where)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # opens no file
    except SystemExit as exc:  # argparse already printed the usage message (or the help)
        return _usage_exit() if exc.code else 0
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return _usage_exit()
    from syncd import report
    from syncd.logs import setup_logging
    from syncd.private import private_by_default
    from syncd.text import printable

    private_by_default()  # the database, logs, calendars and secrets are the owner's alone
    app = App(args)
    # Every command logs through the redacting handler; `run` reconfigures it from the
    # config's [logging] section.
    setup_logging("debug" if args.debug else "warning")
    try:
        return handler(args, app)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"syncd: {printable(report.describe(exc))}", file=sys.stderr)
        return report.exit_code(exc)
    finally:
        app.close()


def _usage_exit() -> int:
    from syncd.report import EXIT_USAGE

    return EXIT_USAGE


def require(condition: bool, message: str) -> None:
    """Raise a usage error (exit 2) unless ``condition`` holds."""
    from syncd.errors import UsageError

    if not condition:
        raise UsageError(message=message)


def read_file_arg(path: str) -> str:
    from syncd.errors import UsageError

    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(message=f"cannot read {path}: {exc.strerror}") from None
