"""The WebDAV-Push fixtures (Xandikos with ``--webdav-push``, a TLS receiver it delivers
to) for every CalDAV test module that asks for them."""

from tests.caldav.push_support import push_receiver, push_tls, xandikos_push  # noqa: F401
