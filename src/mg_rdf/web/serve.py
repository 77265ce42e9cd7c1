"""Serving the app with waitress (a production WSGI server), on 127.0.0.1 by default.

Shutdown is graceful: on SIGTERM or SIGINT the server stops accepting
connections at once (and /readyz answers 503), lets the requests already in
flight finish for up to a grace period (``SHUTDOWN_GRACE`` seconds, env
``MG_RDF_SHUTDOWN_GRACE``; default the query time limit + 5 s, so a query in
flight can always end by its limit), closes idle keep-alive connections, stops
the request threads and the /sparql worker processes, and returns, so
``mg-rdf serve`` exits 0. A second signal during the grace period stops at once.

Access-log lines (JSON, see ``hardening``) go to stderr with waitress's own log.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from . import create_app
from .health import DRAINING

HEADER_BYTES = 64 * 1024     # request line + all headers (waitress answers 431 past it)
POLL_SECONDS = 0.25          # how often the serving loop looks for a stop signal


def serve(config: dict[str, Any], host: str = "127.0.0.1", port: int = 8080, threads: int = 16,
          grace: float | None = None) -> None:
    """Serve the app until SIGTERM/SIGINT, then shut down gracefully (see the module doc)."""
    app = create_app(config)
    _configure_logging()
    if grace is None:
        env = os.environ.get("MG_RDF_SHUTDOWN_GRACE")
        grace = float(env) if env else float(app.config.get("SHUTDOWN_GRACE") or app.config["QUERY_TIMEOUT"] + 5)
    sockets: dict = {}   # every listener, connection and trigger; ours, as a host may resolve to several listeners
    server = create_server(app, map=sockets, host=host, port=port, threads=threads, ident="mg-rdf",
                           channel_timeout=60, connection_limit=512, max_request_header_size=HEADER_BYTES,
                           max_request_body_size=int(app.config["MAX_CONTENT_LENGTH"]))
    print(f"serving {config.get('STORE_PATH')} at http://{host}:{port}/ (SPARQL: /sparql)", flush=True)
    GracefulServer(sockets, server.task_dispatcher, app, grace).run()


class GracefulServer:
    """Runs waitress's event loop in this (main) thread, so a signal can end it between two polls."""

    def __init__(self, sockets: dict, dispatcher: Any, app: Flask, grace: float):
        self.sockets = sockets
        self.dispatcher = dispatcher
        self.app = app
        self.grace = grace
        self.signals = 0

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self.signals:
                wasyncore.loop(timeout=POLL_SECONDS, map=self.sockets, use_poll=True, count=1)
            self.drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only flags here: the event loop is not safe to touch from a signal handler.
        self.signals += 1
        self.app.extensions[DRAINING].set()
        if self.signals > 1:
            print("second signal: stopping now", file=sys.stderr, flush=True)

    def drain(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, then stop everything."""
        for listener in [d for d in list(self.sockets.values()) if isinstance(d, BaseWSGIServer)]:
            wasyncore.dispatcher.close(listener)   # the listening socket only; the trigger still wakes the loop
        deadline = time.monotonic() + self.grace
        busy = self._channels()
        print(f"shutting down: no new connections; {sum(not _idle(c) for c in busy)} request(s) in flight, "
              f"{self.grace:g} s grace", file=sys.stderr, flush=True)
        while busy and self.signals < 2 and time.monotonic() < deadline:
            for channel in busy:
                with channel.requests_lock:
                    if _idle(channel):
                        channel.will_close = True   # closed by the loop's next write pass
            wasyncore.loop(timeout=0.05, map=self.sockets, use_poll=True, count=1)
            busy = self._channels()
        if busy:
            print(f"grace period over: closing {len(busy)} connection(s) still busy", file=sys.stderr, flush=True)
        remaining = 0.5 if self.signals > 1 else max(0.5, deadline - time.monotonic())
        self.dispatcher.shutdown(cancel_pending=True, timeout=remaining)
        for channel in self._channels():
            channel.handle_close()                     # cut at the end of the grace period
        wasyncore.close_all(self.sockets, ignore_all=True)   # and the trigger
        pool = self.app.extensions.get("mg_rdf.query_pool")
        if pool is not None:
            pool.close()   # idle workers end now; a busy one ends with its query, or when this process ends
        print("stopped", file=sys.stderr, flush=True)

    def _channels(self) -> list[HTTPChannel]:
        return [c for c in list(self.sockets.values()) if isinstance(c, HTTPChannel)]


def _idle(channel: HTTPChannel) -> bool:
    """No request being read, waiting, running or being sent on this connection."""
    return not channel.requests and channel.request is None and not channel.total_outbufs_len


def _configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress").setLevel(logging.INFO)
    access = logging.getLogger("mg_rdf.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))   # the message is the JSON line
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
