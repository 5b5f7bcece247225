"""Run Xandikos with WebDAV-Push for the tests: ``python xandikos_push.py CA_FILE ARGS...``.

``ARGS`` are Xandikos's own (``--webdav-push`` among them). Two things differ from an
admin's run, both because the test's push receiver is on loopback with its own
certificate:

* ``XANDIKOS_ALLOW_INTERNAL_PUSH_RESOURCE=1``: Xandikos refuses push resources on
  loopback or private addresses unless this is set (its guard against SSRF);
* push deliveries trust ``CA_FILE`` (the receiver's self-signed certificate), as an
  admin's server would trust a public certificate. Xandikos's delivery session ignores
  the environment's CA settings, so its session factory is wrapped to say so.

Everything else (registration, Push-Dont-Notify, aes128gcm encryption, VAPID signing) is
Xandikos's and pywebpush's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any


def main(argv: list[str]) -> int:
    ca_file, rest = argv[0], argv[1:]
    os.environ["XANDIKOS_ALLOW_INTERNAL_PUSH_RESOURCE"] = "1"
    from xandikos import web, webdav_push_http

    plain = webdav_push_http.make_session

    def make_session() -> Any:
        session = plain()
        session.verify = ca_file
        return session

    webdav_push_http.make_session = make_session
    parser = argparse.ArgumentParser()
    web.add_parser(parser)
    result: int = asyncio.run(web.main(parser.parse_args(rest), parser)) or 0
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
