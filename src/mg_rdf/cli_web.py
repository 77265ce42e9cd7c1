"""The ``mg-rdf`` commands that publish: ``serve`` (the web app, optionally watching a corpus)
and ``reconcile`` (propose Wikidata links). Registered on the group in cli.py."""

from __future__ import annotations

from pathlib import Path

import click

from .cli import base_option, main, store_option
from .config import MEMORY_COPY_MB
from .problems import MgRdfError
from .store import open_read_only
from .vocab import DataIris
from .wikidata_links import LINKS_PATH, RECONCILE_BATCH, RECONCILE_TIMEOUT, WIKIDATA_QUERY_SERVICE


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise).")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--processes", type=int, default=None,
              help="Serving processes, each answering one request at a time and running its /sparql queries "
                   "itself (default: one per core, at least 2).")
@click.option("--max-processes", type=int, default=None,
              help="Processes the server may grow to while requests are held up by slow queries or slow "
                   "clients (default: --processes + 8).")
@click.option("--threads", type=int, default=None, hidden=True, help="Ignored (the former threaded server).")
@click.option("--query-timeout", default=10.0, show_default=True, type=float,
              help="Seconds a /sparql query may run before it is stopped.")
@click.option("--max-results", default=10_000, show_default=True, type=int,
              help="Rows or triples a /sparql answer holds at most (truncation is signalled).")
@click.option("--keep-alive", "keep_alive", type=click.IntRange(min=0), default=5, show_default=True,
              help="Seconds a client's idle connection is kept open for its next request (0: close every "
                   "connection after its answer).")
@click.option("--query-workers", type=int, default=None, hidden=True,
              help="Ignored: queries run in the serving processes (see --processes).")
@click.option("--allow-service", multiple=True, metavar="URL", default=[WIKIDATA_QUERY_SERVICE], show_default=True,
              help="A SERVICE endpoint queries may call (repeatable; replaces the default). An entry ending in '/' "
                   "allows every URL under it, on public addresses only.")
@click.option("--no-service", is_flag=True, help="Refuse every SERVICE call (no federation).")
@click.option("--shutdown-grace", type=float, default=None,
              help="Seconds in-flight requests get to finish on SIGTERM (default: the query time limit + 5).")
@click.option("--memory-copy-up-to", "memory_copy_mb", type=click.FloatRange(min=0), default=None,
              envvar="MG_RDF_MEMORY_COPY_MB", show_default=f"{MEMORY_COPY_MB} MB",
              help="Answer /sparql from an in-memory copy of the current build when its database takes at most this "
                   "many MB on disk (each serving process holds ~1.5x that; 0: always from disk; "
                   "env MG_RDF_MEMORY_COPY_MB).")
@click.option("--watch", "watch_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="A corpus folder to build first and then watch: every change is applied (incremental build, "
                   "atomic swap) while serving.")
@store_option
@base_option
def serve_command(host, port, processes, max_processes, threads, query_timeout, max_results, keep_alive, query_workers,
                  allow_service, no_service, shutdown_grace, memory_copy_mb, watch_dir, store, base):
    """Publish the store over HTTP (building the bundled sample first if there is no store)."""
    from .store import current_build
    from .web.serve import serve, with_faster_allocator

    with_faster_allocator()   # returns only when already running with it, or without one to use

    if watch_dir is not None:
        if isinstance(store, str):
            raise click.UsageError("--watch builds into a local store, not a remote one")
        click.echo(f"building {watch_dir} into {store} (then watching it for changes)")
        _watch_in_own_process(watch_dir, store, base)
    if not isinstance(store, str) and current_build(store) is None:
        click.echo(f"no store at {store}: building the bundled sample corpus first")
        _build_sample_in_own_process(store, base)
    if threads is not None or query_workers is not None:
        click.echo("note: --threads and --query-workers are ignored: every serving process answers one request "
                   "at a time and runs its own queries (see --processes)", err=True)
    serve({"STORE_PATH": store, "BASE": base, "QUERY_TIMEOUT": query_timeout, "MAX_RESULTS": max_results,
           "SERVICE_ALLOWLIST": () if no_service else tuple(allow_service),
           "MEMORY_COPY_MB": MEMORY_COPY_MB if memory_copy_mb is None else memory_copy_mb},
          host=host, port=port, processes=processes, max_processes=max_processes, grace=shutdown_grace,
          keep_alive=keep_alive)


def _build_sample_in_own_process(store: Path, base: str) -> None:
    """``mg-rdf build`` of the bundled sample in a new interpreter, for the reason below: the
    supervisor forks the serving processes, and RocksDB's threads of a build in this process
    would not survive that fork."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from mg_rdf.cli import main; main()", "build", "--store",
                           str(store), "--base", base], check=False)
    if done.returncode != 0:
        raise click.ClickException(f"the sample corpus could not be built into {store} (see above)")


def _watch_in_own_process(watch_dir: Path, store: Path, base: str) -> None:
    """Build ``watch_dir`` once, then watch it, in a new interpreter (not a fork of this one).

    The builds write with RocksDB, whose background threads (flushes, compactions) do not
    survive a fork: a builder forked after a build, or forked by the server's supervisor, waits
    for them forever at its next build. So neither the supervisor nor the serving processes
    it forks ever build; the first build runs to its end before serving starts, and the
    watcher ends when this process does."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "from mg_rdf.cli_web import watch_child; watch_child()", str(watch_dir), str(store),
           base, str(os.getpid())]
    subprocess.run([*cmd, "once"], check=False)
    subprocess.Popen([*cmd, "follow"])


def watch_child() -> None:
    """The watcher process: ``CORPUS STORE BASE PARENT_PID once|follow`` (see _watch_in_own_process)."""
    import os
    import signal
    import sys
    import threading
    import time

    from .watch import CorpusWatcher

    corpus, store, base, parent, mode = sys.argv[1:6]
    # Ctrl-C reaches the whole process group: let a build in progress finish; the watcher ends
    # with the server (below).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watcher = CorpusWatcher(Path(corpus), Path(store), DataIris(base), remember=mode != "once")
    if mode == "once":
        watcher.rebuild()
        return

    def follow_parent() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        watcher.stopping.set()

    threading.Thread(target=follow_parent, daemon=True).start()
    try:
        watcher.run()
    finally:
        os._exit(0)


@main.command("reconcile")
@click.option("--endpoint", default=WIKIDATA_QUERY_SERVICE, show_default=True, metavar="URL",
              help="A Wikidata-compatible SPARQL endpoint to ask.")
@click.option("--links", "links_path", type=click.Path(dir_okay=False, path_type=Path), default=LINKS_PATH,
              show_default="data/wikidata-links.tsv",
              help="The reviewed mapping: entities with an accepted row are skipped, reviewed rows are kept as they are.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the mapping with this run's proposals (default: --links itself).")
@click.option("--batch", type=click.IntRange(1, 500), default=RECONCILE_BATCH, show_default=True,
              help="Entities per request (one VALUES block).")
@click.option("--timeout", type=click.FloatRange(min=1), default=RECONCILE_TIMEOUT, show_default=True,
              help="Seconds one request may take.")
@store_option
@base_option
def reconcile_command(endpoint, links_path, out_path, batch, timeout, store, base):
    """Propose Wikidata items for entities without a reviewed link, with the evidence, for review."""
    from .reconcile import SparqlClient, reconcile

    try:
        report = reconcile(open_read_only(store), DataIris(base), SparqlClient(endpoint, timeout), links_path,
                           out_path, batch)
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    click.echo(report.summary())
