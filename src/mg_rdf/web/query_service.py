"""Running /sparql queries so that a time limit really stops them: in this process (under
``mg-rdf serve``) or in worker processes (anywhere else).

Under ``mg-rdf serve`` (``serve.py``) every serving process handles one request at
a time, so it can afford to die for a query: ``InProcessRunner`` evaluates the
query in the request thread itself (no pipe, no second process, no hand-off to
another thread) while a watchdog thread of the process keeps the time limit. When
the limit passes, the watchdog has the request answered 503 (the endpoint gives it
``on_timeout``, which writes that answer to the client's socket), and ends the
process with ``os._exit`` (which stops the Rust query with it); the supervisor forks
a fresh one. Nothing else is lost: the process had no other request.

Anywhere else (the Flask test client, an app mounted in another, threaded WSGI
server) a process serves many requests at once and must not die for one, so
queries go to ``QueryPool``'s worker processes, as follows.

pyoxigraph has no timeout and no cancellation, and it releases the GIL while it
works, so a query running in a thread cannot be stopped. Each query therefore
runs in a worker process (``worker_main``; ``WORKER_COMMAND`` starts it) that
opens the store read-only, evaluates the query, writes the answer in the format
the client chose (with the result cap applied, see ``results``) and sends back
the bytes.
When a query outlives its limit the web process kills that worker with SIGKILL
and starts a fresh one; the client gets ``QueryTimeout``.

IPC is one persistent pair of pipes per worker, with length-prefixed frames:
a small JSON header and a raw body. Jobs carry the build directory to query (or a
pin's, for ``/sparql?pin=``), so a worker opens a new build when it becomes
current; it keeps the last ``OPEN_STORES`` directories open. The SERVICE
policy (``service_policy``) is checked in the worker before evaluation, so the
rdflib parse it may need is bounded by the same time limit.

The pool keeps ``workers`` processes plus one warm spare, and grows up to
``max_workers`` when they are all busy (starting a new spare whenever the last
idle worker is taken), so slow queries do not hold up fast ones; past that bound
a request waits up to ``queue_wait`` seconds for a free worker and then gets
``PoolBusy``. Workers beyond ``workers`` + 1 retire after ``retire_after`` idle
seconds.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

FRAME = struct.Struct("!II")   # header length, body length
OPEN_STORES = 4                # Oxigraph directories a worker keeps open (the pins of a build)


class QueryTimeout(Exception):
    """The query ran past its time limit; its worker was killed."""

    def __init__(self, limit: float, remote: bool = False):
        # pyoxigraph waits for a SERVICE endpoint without a timeout of its own: the limit is what stops it.
        waiting = "; the time includes waiting for the remote SERVICE endpoint" if remote else ""
        super().__init__(f"the query ran longer than its time limit of {limit:g} s and was stopped{waiting}")
        self.limit = limit


class PoolBusy(Exception):
    """Every worker stayed busy for as long as a request may wait."""


class WorkerLost(Exception):
    """A worker process ended without answering (crashed, or killed from outside)."""


@dataclass
class QueryJob:
    build_dir: str                       # the Oxigraph directory to query (follows store swaps)
    query: str
    solutions_format: str | None         # json, xml, csv, tsv — None when the client accepts none
    graph_format: str | None             # ttl, nt, jsonld, rdf — None when the client accepts none
    max_results: int                     # rows (SELECT) or triples (CONSTRUCT/DESCRIBE)
    default_graph: list[str] | None = None   # protocol dataset; both None = union of all graphs
    named_graphs: list[str] | None = None
    link: str | None = None              # where a truncated answer points for an explanation
    service_allowlist: list[str] = field(default_factory=list)   # SERVICE endpoints the query may call
    service_max_results: int | None = None   # rows one SERVICE call may bring back (default: max_results)


@dataclass
class QueryAnswer:
    status: str                          # ok, syntax-error, service-refused, not-acceptable, error
    kind: str = ""                       # solutions, boolean, graph
    format: str = ""                     # key of the format the body is written in
    truncated: bool = False
    count: int = 0
    message: str = ""
    seconds: float = 0.0                 # evaluation + serialisation, measured in the worker
    body: bytes = field(default=b"", repr=False)
    memory: bool = False                 # evaluated over the in-memory copy of the build (memory_copy.py)

    def etag(self) -> str:
        """The answer's ETag: a hash of its bytes, made once (an answer from the cache is sent
        many times; hashing a 35 kB answer each time cost as much as the rest of a cached answer's
        headers). Kept outside the fields, so that a worker never sends it."""
        tag = self.__dict__.get("_etag")
        if tag is None:
            tag = self.__dict__["_etag"] = f'"{hashlib.sha1(self.body).hexdigest()[:20]}"'
        return tag


# --- in the worker ---

def evaluate(store: Any, job: QueryJob) -> QueryAnswer:
    """Run ``job`` on an open pyoxigraph store and serialise the answer (no I/O besides the store)."""
    from pyoxigraph import NamedNode, QueryBoolean, QuerySolutions

    from ..vocab import PREFIXES
    from .results import write_boolean, write_graph, write_solutions
    from .service_policy import ServiceRefused, cap_service_results, check_service_targets

    started = time.perf_counter()
    try:
        # Here, not in the web process: parsing with rdflib can be slow, and here it is under the time limit.
        check_service_targets(job.query, job.service_allowlist)
        query = cap_service_results(job.query, job.service_max_results or job.max_results)
    except ServiceRefused as e:
        return QueryAnswer("service-refused", message=str(e))
    options: dict[str, Any] = {"prefixes": PREFIXES}
    if job.default_graph is None and job.named_graphs is None:
        options["use_default_graph_as_union"] = True
    else:   # a dataset given by the protocol replaces the default one, as the protocol says
        options["default_graph"] = [NamedNode(g) for g in job.default_graph or []]
        options["named_graphs"] = [NamedNode(g) for g in job.named_graphs or []]
    try:
        result = store.query(query, **options)
        if isinstance(result, (QueryBoolean, QuerySolutions)):
            fmt, kind = job.solutions_format, "boolean" if isinstance(result, QueryBoolean) else "solutions"
            if fmt is None:
                return QueryAnswer("not-acceptable", kind, message="a SELECT or ASK answer")
            if kind == "boolean":
                answer = QueryAnswer("ok", kind, fmt, body=write_boolean(bool(result), fmt), count=1)
            else:
                variables = [v.value for v in result.variables]
                written = write_solutions(variables, result, fmt, job.max_results, job.link)
                answer = QueryAnswer("ok", kind, fmt, written.truncated, written.count, body=written.body)
        else:
            fmt = job.graph_format
            if fmt is None:
                return QueryAnswer("not-acceptable", "graph", message="a CONSTRUCT or DESCRIBE answer (a graph)")
            written = write_graph(result, fmt, job.max_results, job.link)
            answer = QueryAnswer("ok", "graph", fmt, written.truncated, written.count, body=written.body)
    except SyntaxError as e:
        return QueryAnswer("syntax-error", message=str(e))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - pyoxigraph panics are BaseExceptions; a worker must survive them
        return QueryAnswer("error", message=f"{type(e).__name__}: {e}")
    answer.seconds = time.perf_counter() - started
    return answer


def worker_main() -> None:
    """The worker loop: read a job, answer it, until the web process closes the pipe."""
    from ..remote import open_store

    out_fd = os.dup(1)
    os.dup2(2, 1)   # anything printed by a library goes to the log, never into the answer pipe
    _exit_with_parent(os.getppid())
    send_frame(out_fd, {"status": "ready", "pid": os.getpid()})
    # The directories opened last, kept open: queries alternate between the pins of one build.
    opened: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            header, _ = recv_frame(0)
        except EOFError:
            return
        job = QueryJob(**header)
        store = opened.get(job.build_dir)
        if store is None:
            try:
                store = opened[job.build_dir] = open_store(job.build_dir)
            except OSError as e:
                send_frame(out_fd, {"status": "error", "message": f"cannot open the store: {e}"})
                continue
            while len(opened) > OPEN_STORES:
                opened.popitem(last=False)
        opened.move_to_end(job.build_dir)
        answer = evaluate(store, job)
        meta = dict(vars(answer))   # flat fields: no need for asdict's deep copy
        body = meta.pop("body")
        send_frame(out_fd, meta, body)


def _exit_with_parent(parent: int) -> None:
    """End this worker soon after the web process ends, even in the middle of a query."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


# --- framing, both sides ---

def send_frame(fd: int, header: dict, body: bytes = b"") -> None:
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    data = memoryview(FRAME.pack(len(head), len(body)) + head + body)
    while data:
        data = data[os.write(fd, data):]


def recv_frame(fd: int) -> tuple[dict, bytes]:
    head_len, body_len = FRAME.unpack(_read_exact(fd, FRAME.size))
    header = json.loads(_read_exact(fd, head_len))
    return header, _read_exact(fd, body_len)


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the pipe closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# --- in the web process ---

# The worker needs neither Flask nor the app: a stand-in for the mg_rdf.web package (instead of
# running its __init__) halves the time a new worker takes to start.
_LAUNCH = ("import os, sys, types, mg_rdf; web = types.ModuleType('mg_rdf.web'); "
           "web.__path__ = [os.path.join(os.path.dirname(mg_rdf.__file__), 'web')]; sys.modules['mg_rdf.web'] = web; "
           "from mg_rdf.web.query_service import worker_main; worker_main()")
WORKER_COMMAND = [sys.executable, "-c", _LAUNCH]
STARTUP_LIMIT = 60.0   # seconds a new worker may take to import and say it is ready


class Worker:
    """One worker process and its pipes; used by one request at a time."""

    def __init__(self, command: list[str]):
        # The worker imports mg_rdf from where this process found it, even from a source checkout.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                        env={**os.environ, "PYTHONPATH": path})
        self.pid = self.process.pid
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        self.ready = False
        self.last_used = time.monotonic()

    def run(self, job: QueryJob, timeout: float) -> QueryAnswer:
        if not self.ready:
            if not self._readable(STARTUP_LIMIT):
                raise WorkerLost(f"query worker {self.pid} did not start")
            self._receive()
            self.ready = True
        try:
            send_frame(self._in, vars(job))
        except OSError as e:
            raise WorkerLost(f"query worker {self.pid} is gone ({e})") from None
        if not self._readable(timeout):
            raise QueryTimeout(timeout, remote=bool(job.service_allowlist) and "service" in job.query.lower())
        header, body = self._receive()
        return QueryAnswer(**header, body=body)

    def _receive(self) -> tuple[dict, bytes]:
        try:
            return recv_frame(self._out)
        except (EOFError, OSError, ValueError) as e:
            raise WorkerLost(f"query worker {self.pid} stopped without answering ({e})") from None

    def _readable(self, timeout: float) -> bool:
        poller = select.poll()
        poller.register(self._out, select.POLLIN | select.POLLHUP | select.POLLERR)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                return bool(poller.poll(remaining * 1000))
            except InterruptedError:
                continue

    def kill(self) -> None:
        """SIGKILL: the only way to stop a query inside pyoxigraph."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


class QueryPool:
    """Worker processes for /sparql, grown when busy, each killed when its query runs too long."""

    def __init__(self, workers: int = 2, max_workers: int | None = None, queue_wait: float = 10.0,
                 retire_after: float = 60.0, command: list[str] | None = None):
        self.workers = max(1, workers)
        self.max_workers = max(self.workers, max_workers if max_workers is not None else 2 * self.workers + 2)
        self.queue_wait = queue_wait
        self.retire_after = retire_after
        self.command = command or WORKER_COMMAND
        self._cond = threading.Condition()
        self._idle: deque[Worker] = deque()
        self._size = 0
        self._closed = False
        self.started = 0    # processes started, ever
        self.killed = 0     # processes killed for running past a limit

    def start(self) -> None:
        """Start the workers and a warm spare now, so the first queries do not wait for them."""
        with self._cond:
            while self._size < min(self.workers + 1, self.max_workers):
                self._idle.appendleft(self._spawn_locked())

    def run(self, job: QueryJob, timeout: float) -> QueryAnswer:
        """Answer ``job`` within ``timeout`` seconds, or raise QueryTimeout / PoolBusy / WorkerLost."""
        worker = self._acquire()
        try:
            answer = worker.run(job, timeout)
        except QueryTimeout:
            self._discard(worker, killed=True)
            raise
        except BaseException:
            self._discard(worker)
            raise
        self._release(worker)
        return answer

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._cond.notify_all()
        for w in idle:
            w.kill()

    @property
    def size(self) -> int:
        return self._size

    @property
    def pids(self) -> list[int]:
        with self._cond:
            return [w.pid for w in self._idle]

    def _spawn_locked(self) -> Worker:
        worker = Worker(self.command)
        self._size += 1
        self.started += 1
        return worker

    def _acquire(self) -> Worker:
        deadline = time.monotonic() + self.queue_wait
        with self._cond:
            while True:
                if self._closed:
                    raise PoolBusy("the query service is shutting down")
                while self._idle and self._idle[-1].process.poll() is not None:
                    self._size -= 1                    # died while idle (OOM killer, kill -9): forget it
                    self._idle.pop().kill()            # (reaps it and closes its pipes)
                if self._idle:
                    worker = self._idle.pop()          # the most recently used: warm
                    break
                if self._size < self.max_workers:
                    worker = self._spawn_locked()
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolBusy(f"all {self._size} query workers stayed busy for {self.queue_wait:g} s")
                self._cond.wait(remaining)
            if not self._idle and self._size < self.max_workers:
                self._idle.appendleft(self._spawn_locked())   # a warm spare for whoever comes next
            return worker

    def _release(self, worker: Worker) -> None:
        retired = []
        with self._cond:
            if self._closed:
                retired.append(worker)
            else:
                worker.last_used = now = time.monotonic()
                self._idle.append(worker)
                while (self._size > self.workers + 1 and len(self._idle) > 1
                       and now - self._idle[0].last_used > self.retire_after):
                    retired.append(self._idle.popleft())
                    self._size -= 1
                self._cond.notify()
        for w in retired:
            w.kill()

    def _discard(self, worker: Worker, killed: bool = False) -> None:
        worker.kill()
        with self._cond:
            self._size -= 1
            self.killed += killed
            if not self._closed and self._size < self.workers:
                self._idle.appendleft(self._spawn_locked())
            self._cond.notify()


# --- in a serving process of `mg-rdf serve` ---

WATCH_POLL = 0.05   # seconds between the watchdog's looks at the running query


class _Watchdog:
    """One thread per serving process that ends a query past its limit.

    The request thread evaluates the query itself (no hand-off to another thread: two
    wake-ups fewer per query); before it starts it arms the watchdog with the deadline
    and what to do then (write the 503), and disarms it when the answer is ready. Arming
    and disarming only set a field under a lock; the watchdog looks every ``WATCH_POLL``
    seconds. Whoever takes the armed entry first wins: the request thread then writes its
    answer, or the watchdog writes the 503 and ends the process (only that stops pyoxigraph),
    and the request thread, still in Rust or just out of it, writes nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: tuple[float, Any, int] | None = None
        self._token = 0
        self._pid = 0
        self._thread: threading.Thread | None = None
        self.on_poll: Any = None   # also called at every look (the serving layer's own checks)

    def start(self) -> None:
        with self._lock:
            # A thread does not survive fork: a forked serving process starts its own.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._armed = None
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, daemon=True, name="sparql-watchdog")
                self._thread.start()

    def arm(self, seconds: float, on_timeout: Any) -> int:
        if self._pid != os.getpid() or self._thread is None:
            self.start()
        with self._lock:
            self._token += 1
            self._armed = (time.monotonic() + seconds, on_timeout, self._token)
            return self._token

    def disarm(self, token: int) -> bool:
        """True: the answer is the request thread's to write. False: the watchdog took it."""
        with self._lock:
            if self._armed is not None and self._armed[2] == token:
                self._armed = None
                return True
            return False

    def _loop(self) -> None:
        while True:
            time.sleep(WATCH_POLL)
            if self.on_poll is not None:
                try:
                    self.on_poll()
                except Exception:  # noqa: BLE001 - a failing check must not stop the watchdog
                    logging.getLogger(__name__).exception("watchdog check failed")
            with self._lock:
                armed = self._armed
                if armed is None or time.monotonic() < armed[0]:
                    continue
                self._armed = None
            try:
                if armed[1] is not None:
                    armed[1]()   # the 503, written to the client by the serving layer
            finally:
                end_process()


def end_process() -> None:
    """End this serving process now (a query outlived its limit; see the module doc)."""
    import logging

    logging.getLogger(__name__).warning("process %s ends: a query outlived its time limit here", os.getpid())
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class InProcessRunner:
    """Evaluates /sparql queries in the request thread of this process, under a watchdog (for
    a process that serves one request at a time; see the module doc). Same interface as
    ``QueryPool``, plus ``on_timeout``: what the watchdog does at the limit before the process
    ends (write the 503)."""

    def __init__(self) -> None:
        self._watchdog = _Watchdog()
        self._pid = 0
        self.opened: OrderedDict[str, Any] = OrderedDict()

    @property
    def size(self) -> int:
        return 1

    def start(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.opened = OrderedDict()   # stores opened before a fork are not this process's
        self._watchdog.start()

    def run(self, job: QueryJob, timeout: float, store: Any = None, on_timeout: Any = None) -> QueryAnswer:
        """Answer ``job``, or at ``timeout`` seconds have the watchdog call ``on_timeout`` and end
        this process. ``store``: the open store of ``job.build_dir`` when the caller has it."""
        if self._pid != os.getpid():
            self.start()
        token = self._watchdog.arm(timeout, on_timeout)
        try:
            if store is None:
                store = self._open(job.build_dir)
            answer = evaluate(store, job) if not isinstance(store, QueryAnswer) else store
        finally:
            if not self._watchdog.disarm(token):
                # The watchdog answered 503 and is ending the process: write nothing more.
                threading.Event().wait()
        return answer

    def close(self) -> None:
        pass

    def on_watch(self, check: Any) -> None:
        """Have the watchdog thread call ``check()`` at each of its looks (every ``WATCH_POLL`` s)."""
        self.start()
        self._watchdog.on_poll = check

    def _open(self, build_dir: str) -> Any:
        """The open store of ``build_dir`` (the last ``OPEN_STORES`` are kept), or a QueryAnswer
        saying why it cannot be opened."""
        from ..remote import open_store

        store = self.opened.get(build_dir)
        if store is None:
            try:
                store = self.opened[build_dir] = open_store(build_dir)
            except OSError as e:
                return QueryAnswer("error", message=f"cannot open the store: {e}")
            while len(self.opened) > OPEN_STORES:
                self.opened.popitem(last=False)
        self.opened.move_to_end(build_dir)
        return store


_shared: dict[tuple, QueryPool] = {}
_shared_lock = threading.Lock()


def shared_pool(workers: int, max_workers: int | None, queue_wait: float) -> QueryPool:
    """The process's pool for these settings: apps created in one process (tests make many) share
    their workers instead of each leaving its own processes behind. Closed when the process exits."""
    key = (workers, max_workers, queue_wait)
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None:
            pool = _shared[key] = QueryPool(workers, max_workers, queue_wait)
            atexit.register(pool.close)
        return pool


if __name__ == "__main__":
    worker_main()
