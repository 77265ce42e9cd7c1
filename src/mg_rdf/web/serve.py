"""Serving the app: a prefork server (gunicorn's arbiter and sync workers), on 127.0.0.1 by default.

One supervisor process binds the socket and forks serving processes that share
it. Each serving process handles one request at a time, and runs /sparql queries
in process (``query_service.InProcessRunner``): no pipe to a query worker, and
as many processes as there are cores answer in parallel (one GIL each). A query
past its time limit is answered 503 by its own process's watchdog thread, which then
ends the process with ``os._exit`` (the only way to stop a query inside pyoxigraph); the supervisor
forks a replacement at once. A serving process that dies for any other reason
(killed, out of memory) loses only the one request it had, and is replaced too.

How many: ``processes`` (default one per core, at least 2) are kept; when every one of them is
busy and some have been busy with one request for longer than ``GROW_AFTER``
seconds (slow queries, slow clients), one more is forked per such process, up to
``max_processes``, so slow queries do not hold up fast ones; the extra processes
are retired after ``RETIRE_AFTER`` seconds without need. Which process is busy,
and since when, is in a small shared-memory board (``Board``) that the processes
write and the supervisor reads.

Connections are kept open between requests (HTTP/1.1 keep-alive): a new connection
costs the client and the server more CPU than many small queries. Each process
waits on the listening socket and on every connection it holds, and answers
whichever has a request first, one at a time. These rules keep that from holding
clients up: a new connection is served at once by the process that accepted it
(it was free), unless it sends nothing within ``FIRST_REQUEST_WAIT`` (then it
waits like an idle one); a process holding more than its share of all connections (their
number over ``processes``, from the board) closes one after its answer and
takes no new connection for ``ACCEPT_PAUSE``, so that the client reconnects to
another process; and when one request has run for ``SHED_AFTER`` seconds (a slow
query), the watchdog thread closes the process's idle connections, whose clients
then reconnect to a free process (a request sent on one of them in that instant
is lost with it, as when any server closes an idle connection; HTTP clients retry
those). Idle connections are closed after ``--keep-alive`` seconds (default
``KEEPALIVE``; 0 closes every connection after its answer, as before 2026-11-27:
one queue for all processes, a better tail under overload by requests of very
different cost; see DESIGN.md). Put a reverse proxy in front for TLS, as with
any prefork server.

Shutdown is graceful: on SIGTERM or SIGINT the listening socket is shut down at
once (new connections are refused, and /readyz answers 503 in the processes that
are still finishing), the requests in flight get up to a grace period
(``SHUTDOWN_GRACE`` seconds, env ``MG_RDF_SHUTDOWN_GRACE``; default the query time
limit + 5 s, so a query in flight can always end by its limit), then the processes
still busy are killed, and ``mg-rdf serve`` exits 0. A second signal during the
grace period stops at once.

Access-log lines (JSON, see ``hardening``) go to stderr with the server's own log.
"""

from __future__ import annotations

import errno
import gc
import logging
import mmap
import os
import select
import selectors
import signal
import socket
import struct
import sys
import time
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.arbiter import Arbiter
from gunicorn.workers.sync import SyncWorker

from . import create_app
from .hardening import access_log, log_access, new_request_id
from .health import DRAINING
from .replay import LARGEST, REPLAYABLE, Replays
from .state import StoreHandle

HEADER_FIELD_BYTES = 8190    # one header line (gunicorn's maximum); the app refuses long values with 431
POLL_SECONDS = 0.2           # how often the supervisor looks at the board and for stop signals
GROW_AFTER = 0.5             # seconds a request may take before its process counts as held up
RETIRE_AFTER = 30.0          # seconds extra processes are kept after the need for them passed
KEEPALIVE = 5                # default seconds a client's idle connection is kept open (--keep-alive)
KEEPALIVE_POLL = 1.0         # at most this long between looks for idle connections to close
MAX_CONNECTIONS = 64         # open connections per process; past this, answers close theirs
FIRST_REQUEST_WAIT = 0.5     # seconds a new connection may take to send its request before the process moves on
ACCEPT_PAUSE = 0.05          # seconds a process takes no new connection after closing one over its share
SHED_AFTER = GROW_AFTER      # a request running this long has its process's idle connections closed


JEMALLOC = "libjemalloc.so.2"   # Debian's libjemalloc2
ALLOCATOR_ENV = "MG_RDF_JEMALLOC"   # 0: keep the C library's malloc


def with_faster_allocator() -> None:
    """Start ``mg-rdf serve`` again in this process (``exec``: same pid) with jemalloc preloaded,
    if it is installed and not loaded yet; else return. pyoxigraph's query evaluation allocates
    and frees RocksDB iterators and term buffers for every pattern it scans; under glibc's malloc
    that is ~30 % of a serving process's CPU on small queries (perf), and jemalloc answered ~30 %
    more 1-hop queries per second (DESIGN.md). ``MG_RDF_JEMALLOC=0`` keeps glibc's."""
    import ctypes.util

    if os.environ.get(ALLOCATOR_ENV) == "0" or "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    if not ctypes.util.find_library("jemalloc"):
        return
    env = dict(os.environ, LD_PRELOAD=" ".join(filter(None, [os.environ.get("LD_PRELOAD"), JEMALLOC])))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", "from mg_rdf.cli import main; main()", *sys.argv[1:]], env)


def default_processes() -> int:
    """One serving process per core (at least two, so that one slow request never holds up
    all). Requests are CPU-bound (the store is local): with two per core, the processes
    crowded each other's caches and time slices, and 8 clients got ~10 % fewer small
    queries answered per second (DESIGN.md); growth covers slow requests."""
    return max(2, os.cpu_count() or 1)


def serve(config: dict[str, Any], host: str = "127.0.0.1", port: int = 8080, processes: int | None = None,
          max_processes: int | None = None, grace: float | None = None, keep_alive: int = KEEPALIVE) -> None:
    """Serve the app until SIGTERM/SIGINT, then shut down gracefully (see the module doc)."""
    app = create_app({**config, "QUERY_IN_PROCESS": True})
    _configure_logging()
    if grace is None:
        env = os.environ.get("MG_RDF_SHUTDOWN_GRACE")
        grace = float(env) if env else float(app.config.get("SHUTDOWN_GRACE") or app.config["QUERY_TIMEOUT"] + 5)
    processes = max(1, processes or default_processes())
    max_processes = max(processes, max_processes if max_processes is not None else processes + 8)
    limit = float(app.config["QUERY_TIMEOUT"])
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": processes,
        "worker_class": "mg_rdf.web.serve.ServingProcess",
        "preload_app": True,                  # fork from a process that has imported everything: fast respawns
        "timeout": int(limit + 30),           # a backstop: no heartbeat for this long (stuck outside a query)
        "graceful_timeout": max(1, int(grace + 0.999)),   # ours is self.grace (Supervisor.stop)
        "keepalive": max(0, int(keep_alive)),   # 0: close every connection after its answer
        "limit_request_line": 0,              # up to 1 MiB; the app answers 414 past MAX_URL_LENGTH
        "limit_request_field_size": HEADER_FIELD_BYTES,
        "limit_request_fields": 200,
        "backlog": 512,
        "control_socket_disable": True,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "mg-rdf",
        "pre_fork": _assign_slot,
        "post_worker_init": _warm_up,
    }
    _compile_templates(app)
    _read_named_queries(app)
    print(f"serving {config.get('STORE_PATH')} at http://{host}:{port}/ (SPARQL: /sparql) with {processes} "
          f"processes (up to {max_processes})", flush=True)
    server = _Application(app, options)
    Supervisor(server, app, processes, max_processes, grace).run()


class _Application(BaseApplication):
    def __init__(self, app: Flask, options: dict[str, Any]):
        self.application, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


class Board:
    """Shared memory: for each process slot, when its current request started (0: idle), and how
    many client connections it holds."""

    CELL = struct.Struct("d")
    COUNT = struct.Struct("i")

    def __init__(self, slots: int):
        self.slots = slots
        self.counts_at = self.CELL.size * slots
        # anonymous, shared with forked children
        self.memory = mmap.mmap(-1, self.counts_at + self.COUNT.size * slots)

    def set(self, slot: int, value: float) -> None:
        self.CELL.pack_into(self.memory, slot * self.CELL.size, value)

    def get(self, slot: int) -> float:
        return self.CELL.unpack_from(self.memory, slot * self.CELL.size)[0]

    def set_connections(self, slot: int, count: int) -> None:
        self.COUNT.pack_into(self.memory, self.counts_at + slot * self.COUNT.size, count)

    def connections(self) -> int:
        """Client connections held by all processes together."""
        return sum(struct.unpack_from(f"{self.slots}i", self.memory, self.counts_at))


_board: Board | None = None
_flask_app: Flask | None = None


def _listener_last(event: tuple[Any, int]) -> bool:
    return event[0].data is None


class ServingProcess(SyncWorker):
    """A gunicorn sync worker that keeps connections open between requests (see the module doc),
    marks itself busy on the board and ends after a timed-out query."""

    slot = -1

    def run(self) -> None:
        super().run()
        # The loop has ended (SIGTERM, or the supervisor went away). Ending here, without the
        # interpreter's finalisation (~2 s of CPU for this heap on a loaded machine), lets a
        # graceful shutdown of idle processes take milliseconds.
        self.log.info("process %s exiting", os.getpid())
        logging.shutdown()
        os._exit(0)

    def init_signals(self) -> None:
        super().init_signals()
        # Ctrl-C reaches the whole process group: let the supervisor run the graceful shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if _flask_app is not None:
            _flask_app.extensions[DRAINING].set()
        super().handle_exit(sig, frame)

    # --- connections: each process keeps its clients' connections open between requests ---

    def run_for_one(self, timeout: float) -> None:
        """Serve requests, one at a time, from every connection this process holds and from new
        connections on the shared listening socket, whichever is readable first (see the module doc)."""
        listener = self.sockets[0]
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self.PIPE[0], selectors.EVENT_READ, _WAKE)
        self._connections: dict[int, _Connection] = {}
        self._serving: _Connection | None = None
        self._listener, self._resume_accepting = listener, 0.0
        self._listening_at = listener.getsockname()   # for each request's environ: a syscall, asked once
        handle = _flask_app.extensions.get("mg_rdf.store")
        # answers to requests sent again byte for byte (replay.py): a local store's builds only
        self._replays = (Replays() if isinstance(handle, StoreHandle) and _flask_app.config.get("SPARQL_REPLAY", True)
                         else None)
        self._handle_of_store = handle
        _flask_app.extensions["mg_rdf.query_pool"].on_watch(self._shed_if_held)
        notified = 0.0
        try:
            while self.alive:
                now = time.monotonic()
                if now - notified > 1.0:   # the heartbeat the supervisor checks (a syscall: not per request)
                    self.notify()
                    notified = now
                wait = min(timeout, KEEPALIVE_POLL)
                if self._resume_accepting:
                    if now >= self._resume_accepting:
                        self._selector.register(listener, selectors.EVENT_READ, None)
                        self._resume_accepting = 0.0
                    else:
                        wait = min(wait, self._resume_accepting - now)
                # New connections last: with level-triggered epoll the listener tends to be listed
                # first, and a new connection is served at once; a client that closed its idle
                # connection meanwhile would then count here as long as that request runs.
                for key, _ in sorted(self._selector.select(wait), key=_listener_last):
                    if key.data is None:
                        self._accept(listener)
                    elif key.data is _WAKE:
                        os.read(self.PIPE[0], 4096)
                    else:
                        self._serve(key.data)
                    if not self.alive:
                        break
                self._close_idle(time.monotonic() - self.cfg.keepalive)
                if not self.is_parent_alive():
                    return
        finally:
            self._close_idle(None)

    def _accept(self, listener: Any) -> None:
        try:
            client, addr = listener.accept()
        except OSError as e:
            if e.errno == errno.EINVAL:   # the supervisor shut the listening socket down: stopping
                self.alive = False
            elif e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                raise
            return   # another process took it
        client.setblocking(1)
        util.close_on_exec(client)
        if client.family in (socket.AF_INET, socket.AF_INET6):
            # Every answer is written whole, in one sendall: without this, the end of an answer
            # longer than one packet waits for the client's delayed ACK (up to 40 ms) while the
            # connection stays open.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(_HeadersWithBody(client), addr, http.get_parser(self.cfg, client, addr))
        self._connections[client.fileno()] = conn
        _board.set_connections(self.slot, len(self._connections))
        self._selector.register(client, selectors.EVENT_READ, conn)
        # Served at once, as a process free for it took it: left waiting here, its request could
        # wait behind another that turns out to be slow, while other processes are free. Unless
        # nothing comes (a browser's spare connection): then it waits like an idle one.
        waiting = select.poll()   # not select(): this process's descriptors may pass 1024
        waiting.register(client, select.POLLIN)
        if waiting.poll(FIRST_REQUEST_WAIT * 1000):
            self._serve(conn)
        else:
            conn.idle_since = time.monotonic()

    def _serve(self, conn: _Connection) -> None:
        """One request of ``conn`` (and any the client sent behind it), then keep the connection
        open for the next or close it."""
        _board.set(self.slot, time.monotonic())
        self._serving = conn
        keep = False
        try:
            while True:
                if self._replays is not None and not conn.parser.unreader.buf.tell():
                    # the request's bytes as they came, read here rather than by the parser: the
                    # same bytes again may be answered by replay.py (else they go to the parser)
                    data = conn.sock.recv(RECV_SIZE)
                    if not data:
                        break   # the client closed the connection (between requests: its right)
                    if self._replayed(conn, data):
                        keep = True
                        break
                    conn.parser.unreader.unread(data)
                    conn.raw = data
                keep = self._handle(conn, next(conn.parser))
                if not keep or not conn.parser.unreader.buf.tell():
                    break   # closing, or nothing pipelined behind this request: wait in select
        except http.errors.NoMoreData:
            pass   # the client closed the connection (between requests: its right)
        except StopIteration:
            pass
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                self.log.exception("socket error serving a request")
        except BaseException as e:  # noqa: BLE001 - gunicorn answers a bad request (400, 431…) and closes
            self.handle_error(None, conn.sock, conn.addr, e)
            keep = False
        finally:
            self._serving = None
            _board.set(self.slot, 0.0)
        if keep and not conn.shed:
            conn.idle_since = time.monotonic()
        else:
            self._close(conn)

    def _replayed(self, conn: _Connection, data: bytes) -> bool:
        """Answer ``data`` (one read of the connection) as the same bytes were answered before on
        this build, if they were recorded (replay.py), unless the connection is to be closed."""
        replays = self._replays
        if not replays.answers or not self.alive or self._over_share():
            return False
        started, wall = time.perf_counter(), time.time()
        try:
            snap = self._handle_of_store.current()
        except Exception:  # noqa: BLE001 - no build any more: the app answers
            return False
        replay = replays.find(data, snap)
        if replay is None:
            return False
        rid = new_request_id()
        conn.sock.send_whole(replay.answer(replays.date(), rid.encode("ascii")))
        self.nr += 1
        if access_log.isEnabledFor(logging.INFO):
            log_access(wall, rid, replay.fields, started, conn.peer, replayed=True)
        return True

    def _handle(self, conn: _Connection, req: Any) -> bool:
        """Answer ``req`` through the app; True when the connection stays open for another request."""
        environ: dict = {}
        resp = None
        raw, conn.raw = conn.raw, None
        if raw is not None:
            conn.sock.record()
        try:
            self.cfg.pre_request(self, req)
            resp, environ = wsgi.create(req, conn.sock, conn.addr, self._listening_at, self.cfg)
            if not self.alive or not self.cfg.keepalive:
                resp.force_close()
            elif self._over_share():
                resp.force_close()
                self._pause_accepting()
            self.nr += 1
            body = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(body, environ["wsgi.file_wrapper"]):
                    resp.write_file(body)
                else:
                    for part in body:
                        resp.write(part)
                resp.close()
                conn.sock.flush()   # an answer without a body: its head must not wait for the next one
            finally:
                if hasattr(body, "close"):
                    body.close()
        except OSError:
            raise
        except (Exception, SystemExit):
            if resp is not None and resp.headers_sent:
                # Part of an answer is on the wire: nothing sensible can follow it on this connection.
                self.log.exception("error while answering a request")
                raise StopIteration() from None
            raise
        finally:
            sent = conn.sock.recorded()
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:  # noqa: BLE001
                self.log.exception("error in the post_request hook")
        keep = not resp.should_close()
        snap = environ.get(REPLAYABLE)
        if snap is not None and keep and raw is not None and sent and not conn.parser.unreader.buf.tell():
            self._replays.keep(raw, snap, sent, environ, conn.peer)
        return keep

    def _over_share(self) -> bool:
        """Does this process hold more than its share of the connections? Then it closes this
        one after the answer: the client's next connection goes to a process free to take it.
        (Connections are spread when they are made; with keep-alive, one process could otherwise
        keep several busy clients to itself while the other processes have none.)"""
        mine = len(self._connections)
        if mine <= 1:
            return False
        if mine > MAX_CONNECTIONS:
            return True
        return mine > -(-_board.connections() // self.cfg.workers)

    def _pause_accepting(self) -> None:
        """Take no new connection for ``ACCEPT_PAUSE`` seconds: the client of the connection being
        closed for being over this process's share reconnects at once, and the kernel tends to wake
        the process that waited last, this one; a free process should take it instead."""
        if not self._resume_accepting:
            self._selector.unregister(self._listener)
        self._resume_accepting = time.monotonic() + ACCEPT_PAUSE

    def _shed_if_held(self) -> None:
        """From the watchdog thread: while one request has been running here for ``SHED_AFTER``
        seconds (a slow query), close this process's idle connections so that their clients'
        next requests go to a free process instead of waiting behind it."""
        serving = self._serving
        started = _board.get(self.slot)
        if serving is None or not started or time.monotonic() - started < SHED_AFTER:
            return
        for conn in list(self._connections.values()):
            if conn is not serving and not conn.shed:
                conn.shed = True
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)   # the main loop closes it when the request is done
                except OSError:
                    pass

    def _close_idle(self, before: float | None) -> None:
        """Close connections idle since before ``before`` (all but the one being served when None)."""
        for conn in list(self._connections.values()):
            if conn is not self._serving and (before is None or conn.shed or conn.idle_since < before):
                self._close(conn, idle=True)

    def _close(self, conn: _Connection, idle: bool = False) -> None:
        """Close ``conn``. After an answer, gracefully (the client reads the whole answer before the
        connection goes; up to 2 s); between requests at once: nothing of ours is in flight."""
        fd = conn.sock.fileno()
        if self._connections.pop(fd, None) is not None:
            _board.set_connections(self.slot, len(self._connections))
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        if idle:
            conn.sock.close()
        else:
            util.close_graceful(conn.sock)


_WAKE = object()   # selector data of the pipe gunicorn writes to on signals
RECV_SIZE = 65536   # what one read of a connection takes at most (gunicorn's parser reads 8 kB)
RECORDED_AT_MOST = LARGEST + 65536   # while an answer is sent: the largest replay.py keeps, and a head


class _Connection:
    """One client connection a serving process holds: its socket, address and request parser."""

    __slots__ = ("sock", "addr", "parser", "idle_since", "shed", "raw", "peer")

    def __init__(self, sock: Any, addr: Any, parser: Any):
        self.sock, self.addr, self.parser = sock, addr, parser
        self.idle_since = time.monotonic()
        self.shed = False
        self.raw: bytes | None = None   # the bytes of the request being answered, when read whole here
        # REMOTE_ADDR as gunicorn makes it for this connection's requests (the access log's client)
        self.peer = addr[0] if isinstance(addr, tuple) else (addr.decode() if isinstance(addr, bytes) else str(addr))


class _HeadersWithBody:
    """A client socket that holds gunicorn's response head (written on its own) until the first
    body write, and sends both in one ``sendall``: one loopback/TCP send per small answer instead
    of two (each costs a syscall, a wake-up of the reader and its CPU, on both sides). Anything
    else first sends what is held; everything but the writes goes to the socket as it is."""

    __slots__ = ("_sock", "_held", "_sent", "_sent_size")

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._held: bytes | None = None
        self._sent: list[bytes] | None = None   # when a list: what sendall is given, kept (replay.py)
        self._sent_size = 0

    def record(self) -> None:
        """Keep what ``sendall`` is given from now on (an answer the process may send again), up
        to ``RECORDED_AT_MOST`` bytes (a larger answer, e.g. a dump, is not kept at all)."""
        self._sent, self._sent_size = [], 0

    def recorded(self) -> list[bytes] | None:
        """What was kept since ``record`` (None: nothing, or too much), and stop keeping."""
        sent, self._sent = self._sent, None
        return sent

    def send_whole(self, data: bytes) -> None:
        """Send a whole answer (head and body) at once."""
        self.flush()
        self._sock.sendall(data)

    def sendall(self, data: Any, *args: Any) -> None:
        if self._sent is not None:
            self._sent.append(bytes(data))
            self._sent_size += len(data)
            if self._sent_size > RECORDED_AT_MOST:
                self._sent = None
        if self._held is None and not args and _is_response_head(data):
            self._held = bytes(data)
            return
        if self._held is not None:
            data, self._held = self._held + bytes(data), None
        self._sock.sendall(data, *args)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._sock.sendall(held)

    def send(self, data: Any, *args: Any) -> int:
        self.flush()
        return self._sock.send(data, *args)

    def sendfile(self, *args: Any, **kwargs: Any) -> int:
        self.flush()
        return self._sock.sendfile(*args, **kwargs)

    def shutdown(self, how: int) -> None:
        try:
            self.flush()
        finally:
            self._sock.shutdown(how)

    def close(self) -> None:
        try:
            self.flush()
        except OSError:
            pass
        finally:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _is_response_head(data: Any) -> bool:
    """A whole response head (status line and headers), not an interim 1xx answer."""
    return (isinstance(data, bytes) and len(data) <= 65536 and data.startswith(b"HTTP/")
            and data.endswith(b"\r\n\r\n") and data[9:10] != b"1")


def _compile_templates(app: Flask) -> None:
    """Compile every template once, here, before forking: each serving process would otherwise pay
    ~1 s for it on its first page (and a respawned process again)."""
    env = app.jinja_env
    for name in env.list_templates():
        if name.endswith((".html", ".xml", ".txt")):
            env.get_template(name)


def _read_named_queries(app: Flask) -> None:
    """Parse the named-query files once, here, before forking (~1 s of YAML): otherwise every serving
    process paid it on its first /api/queries request, and a respawned one again."""
    from .. import config
    from ..named_queries import load_queries

    try:
        load_queries(app.config.get("QUERIES_DIR") or config.QUERIES_DIR)
    except Exception as e:  # noqa: BLE001 - a bad query file: the API reports it per request
        logging.getLogger(__name__).warning("named queries not preloaded: %s", e)


def _assign_slot(arbiter: "Supervisor", worker: ServingProcess) -> None:
    worker.slot = arbiter._next_slot
    worker.extra = worker.slot >= arbiter.base   # forked for growth: retired once the need has passed


def _warm_up(worker: ServingProcess) -> None:
    """Open the current build, run one query and read what pages need of every build (dataset
    facts, tags) before taking requests, so a fresh process (a respawn after a timed-out query,
    or one forked when the server grows) does not make its first clients wait for that."""
    from .health import READY_QUERY
    from .pages import all_tags, dataset_summary
    from .query_service import QueryJob
    from .state import query_location

    app = _flask_app
    try:
        snap = app.extensions["mg_rdf.store"].current()
        runner = app.extensions["mg_rdf.query_pool"]
        runner.start()
        runner.run(QueryJob(query_location(app.config["STORE_PATH"]), READY_QUERY, "json", None, 1), 5.0,
                   snap.store if snap.store_root is None else None)
        dataset_summary(snap)
        all_tags(snap)
        copy = app.extensions.get("mg_rdf.memory_copy")
        if copy is not None and getattr(worker, "extra", False):
            # a process forked while the others are held up: 2.3 CPU-s of copying (HEAD) would go to
            # a busy server for a process that lives until 30 s after the need; it answers from disk
            copy.up_to_bytes = 0
        elif copy is not None:
            copy.of(snap)   # started now, ready for /sparql soon after
    except Exception as e:  # noqa: BLE001 - no store yet, or a failing one: requests will say so
        worker.log.info("warm-up skipped: %s", e)
    # Everything made so far (the app, templates, the snapshot) lives as long as the process:
    # out of the collector's sight, a request's garbage collections no longer walk it.
    gc.collect()
    gc.freeze()


class Supervisor(Arbiter):
    """gunicorn's arbiter, with a growing number of processes and the shutdown described above."""

    def __init__(self, application: _Application, app: Flask, processes: int, max_processes: int,
                 grace: float):
        global _board, _flask_app
        super().__init__(application)
        self.app = application
        self.flask_app = app
        self.base, self.max_processes, self.grace = processes, max_processes, grace
        _board = self.board = Board(max_processes)
        _flask_app = app
        self._retire_at: float | None = None

    # --- growth ---

    def spawn_worker(self) -> int:
        used = {w.slot for w in self.WORKERS.values()}
        slot = next(i for i in range(self.max_processes) if i not in used)
        self.board.set(slot, 0.0)
        self._next_slot = slot   # given to the worker object by the pre_fork hook (_assign_slot)
        return super().spawn_worker()

    def busy(self) -> tuple[int, int]:
        """(processes busy with a request, of them those held up for longer than GROW_AFTER)."""
        now, busy, held = time.monotonic(), 0, 0
        for w in self.WORKERS.values():
            started = self.board.get(w.slot) if w.slot >= 0 else 0.0
            if started:
                busy += 1
                held += now - started > GROW_AFTER
        return busy, held

    def manage_workers(self) -> None:
        if self.LISTENERS:
            busy, held = self.busy()
            want = min(self.max_processes, self.base + held)   # a spare for each process held up
            now = time.monotonic()
            if want > self.num_workers:
                self.num_workers = want
                self._retire_at = None
            elif want < self.num_workers:
                if self._retire_at is None:
                    self._retire_at = now + RETIRE_AFTER
                elif now >= self._retire_at:
                    self._retire_extra(self.num_workers - want)
                    self.num_workers = want
                    self._retire_at = None
            else:
                self._retire_at = None
        if len(self.WORKERS) < self.num_workers:
            self.spawn_workers()

    def _retire_extra(self, count: int) -> None:
        """End ``count`` idle processes (a busy one is never cut off)."""
        for pid, w in sorted(self.WORKERS.items(), key=lambda item: -item[1].age):
            if count <= 0:
                return
            if not self.board.get(w.slot):
                self.kill_worker(pid, signal.SIGTERM)
                count -= 1

    def spawn_workers(self) -> None:
        for _ in range(self.num_workers - len(self.WORKERS)):
            self.spawn_worker()

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        return super().wait_for_signals(min(timeout, POLL_SECONDS))

    # --- shutdown ---

    def handle_int(self) -> None:
        raise StopIteration   # graceful, like SIGTERM

    def handle_quit(self) -> None:
        raise StopIteration

    def stop(self, graceful: bool = True) -> None:
        """Refuse new connections at once, let the requests in flight finish within the grace period."""
        self.flask_app.extensions[DRAINING].set()
        busy, _ = self.busy()
        self.kill_workers(signal.SIGTERM)   # idle processes end now, busy ones after their request
        for listener in self.LISTENERS:
            try:   # shut down, not only closed: the serving processes share this socket
                listener.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        self.LISTENERS = []
        print(f"shutting down: no new connections; {busy} request(s) in flight, {self.grace:g} s grace",
              file=sys.stderr, flush=True)
        deadline = time.monotonic() + self.grace
        again = False
        while self.WORKERS and time.monotonic() < deadline and not again:
            while True:
                try:
                    sig = self.SIG_QUEUE.get_nowait()
                except Exception:   # queue.Empty
                    break
                if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                    print("second signal: stopping now", file=sys.stderr, flush=True)
                    again = True
            self.reap_workers()
            time.sleep(0.05)
        if self.WORKERS:
            if not again:
                print(f"grace period over: closing {len(self.WORKERS)} connection(s) still busy", file=sys.stderr,
                      flush=True)
            self.kill_workers(signal.SIGKILL)
            end = time.monotonic() + 5
            while self.WORKERS and time.monotonic() < end:
                self.reap_workers()
                time.sleep(0.02)
        print("stopped", file=sys.stderr, flush=True)

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        if self.LISTENERS or self.WORKERS:
            self.stop()
        if reason is not None:
            self.log.error("Reason: %s", reason)
        # As in the serving processes: skip the interpreter's slow finalisation; nothing is left to flush
        # but the logs.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(exit_status)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access = logging.getLogger("mg_rdf.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))   # the message is the JSON line
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
