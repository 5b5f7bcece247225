"""The daemon's HTTP listener (``[http] listen``): providers' notifications, metrics, health.

* :mod:`syncd.http.router` -- requests, responses and the routing table (a WSGI app);
* :mod:`syncd.http.server` -- the listener itself (cheroot, threaded), started and stopped
  with ``syncd run``;
* :mod:`syncd.http.basic_auth` -- a generated Basic-auth secret in a private file;
* one module per endpoint, each giving the router its :class:`~syncd.http.router.Route`:
  :mod:`syncd.http.pipedrive_hook` serves ``/hooks/pipedrive``,
  :mod:`syncd.http.google_hook` ``/hooks/google``, :mod:`syncd.http.graph_hook`
  ``/hooks/graph``; :mod:`syncd.http.ops` serves ``/metrics``, ``/healthz`` and ``/readyz``;
  :mod:`syncd.http.booking_page` the public booking pages ``/book/<token>`` (with
  :mod:`~syncd.http.booking_views`, the HTML, and :mod:`~syncd.http.booking_guard`,
  signed forms and rate limits).

No endpoint does sync work on the request thread (a booking writes one activity, in one
transaction; its sync is the owner's next cycle): a hook checks who is calling, reads
the body within its cap and hands a hint to :class:`syncd.push.Hints`; cycles run on the
scheduler's workers.
"""
