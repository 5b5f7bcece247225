"""``syncd pipedrive webhooks install|list|remove``: Pipedrive pushes changes to syncd.

``install`` needs ``[crm] kind = "pipedrive"`` and ``[http] public_url``; it makes a new
Basic-auth password (:mod:`syncd.http.basic_auth`), creates the webhooks with it
(:mod:`syncd.crm.pipedrive_webhooks`) and only then writes it where the receiver reads
it, then deletes syncd's older webhooks. ``remove`` deletes syncd's webhooks and the
password. Neither prints the password.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from syncd.http.basic_auth import BasicAuthSecret

if TYPE_CHECKING:
    from syncd.cli import App
    from syncd.crm.pipedrive_http import PipedriveHttp


def register(sub: Any) -> None:
    pipedrive = sub.add_parser("pipedrive")
    group = pipedrive.add_subparsers(dest="pipedrive_command", metavar="ACTION")
    hooks = group.add_parser("webhooks", help="the webhooks that push changes to syncd run")
    actions = hooks.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    actions.add_parser(
        "install", help="create syncd's activity webhooks (create, change, delete) at "
                        "[http] public_url with a new password; replaces older ones"
    ).set_defaults(handler=_install)
    actions.add_parser("list", help="the company's webhooks; syncd's are marked"
                       ).set_defaults(handler=_list)
    actions.add_parser("remove", help="delete syncd's webhooks and their password"
                       ).set_defaults(handler=_remove)


def _http(app: App) -> PipedriveHttp:
    from syncd.cli import require
    from syncd.crm import open_source
    from syncd.crm.pipedrive import PipedriveSource

    config = app.config
    require(config.crm_kind == "pipedrive",
            f'{config.source}: [crm] kind is "{config.crm_kind}"; Pipedrive webhooks need '
            'kind = "pipedrive"')
    source = open_source(config.crm_kind, app.db, config.crm_options)
    assert isinstance(source, PipedriveSource)
    return source.http


def _rows(hooks: list[Any], hook_url: str | None) -> list[dict[str, Any]]:
    return [{"id": h.id, "action": h.action, "object": h.object, "url": h.url,
             "name": h.name, "syncd": h.is_syncds(hook_url), "last_status": h.last_status,
             "last_delivery": h.last_delivery} for h in hooks]


def _install(args: argparse.Namespace, app: App) -> int:
    from syncd.cli import require
    from syncd.crm.pipedrive_webhooks import install

    hook_url = app.config.http.hook_url("pipedrive")
    require(hook_url is not None,
            f"{app.config.source}: [http] public_url is not set; Pipedrive must be told the "
            "https:// address of syncd's receiver (see README, Webhooks)")
    assert hook_url is not None
    http = _http(app)
    secret = BasicAuthSecret(app.config.data_path, "pipedrive")
    user, password = secret.new()
    made = install(http, hook_url, user, password, keep=lambda: secret.write(password))
    listen = app.config.http.listen
    app.emit(_rows(made, hook_url),
             f"installed {len(made)} Pipedrive webhooks ({', '.join(h.action for h in made)} "
             f"of activities) posting to {hook_url}; their password is in {secret.path}"
             + ("" if listen else "; set [http] listen so that syncd run receives them"))
    return 0


def _list(args: argparse.Namespace, app: App) -> int:
    from syncd.crm.pipedrive_webhooks import listed

    hook_url = app.config.http.hook_url("pipedrive")
    app.emit(_rows(listed(_http(app)), hook_url))
    return 0


def _remove(args: argparse.Namespace, app: App) -> int:
    from syncd.crm.pipedrive_webhooks import listed, remove

    hook_url = app.config.http.hook_url("pipedrive")
    http = _http(app)
    gone = remove(http, [h for h in listed(http) if h.is_syncds(hook_url)])
    BasicAuthSecret(app.config.data_path, "pipedrive").delete()
    app.emit(_rows(gone, hook_url), f"removed {len(gone)} Pipedrive webhook(s) of syncd")
    return 0
