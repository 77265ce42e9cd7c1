"""The ``mg-rdf`` command: the one front door. Every command calls the same
library functions the web app uses; errors are printed as one line naming the
file and field, never as a traceback.
"""

from __future__ import annotations

import atexit
import gc
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import click

from . import __version__
from .build import Analysis, BuildRefused, analyse, build
from .config import SAMPLE_CORPUS, SAMPLE_TITLE, base_from_env
from .dataset import CORPUS_TITLE, stored_attribution
from .dump import FORMATS, dump_to_path
from .problems import MgRdfError, Problem
from .source import DEFAULT_REPOSITORY, open_source
from .store import default_store_path, open_read_only
from .vocab import DataIris, check_base
from .workers import without_cyclic_collection


# At exit, Python's finalization runs full cyclic collections over every object still alive (the
# libraries' modules, a build's index): 0.06-0.09 s of a one-edit `mg-rdf build` (0.5 s in all).
# Frozen, they are only freed. Registered when the CLI is imported: exit handlers registered
# later (while a command runs) still run before it, with the collector as they left it.
atexit.register(gc.freeze)


def _base(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    try:
        return check_base(value) if value else base_from_env()
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


class StoreLocation(click.ParamType):
    """A store directory, or the query endpoint URL of a remote SPARQL store."""

    name = "PATH|URL"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        text = str(value)
        return text if text.startswith(("http://", "https://")) else Path(text)


store_option = click.option(
    "--store", "store", type=StoreLocation(), envvar="MG_RDF_STORE",
    default=default_store_path, show_default="$XDG_DATA_HOME/mg-rdf/store",
    help="Store directory, or the query endpoint URL of a SPARQL 1.1 server (env MG_RDF_STORE).")
base_option = click.option(
    "--base", "base", callback=_base, envvar="MG_RDF_BASE", default=None,
    help="Base IRI of the data, ending in '/' (env MG_RDF_BASE; default https://w3id.org/movement-graph/).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mg-rdf")
def main() -> None:
    """Build the Movement Graph as linked data, validate it, query it and publish it."""


pin_option = click.option("--pin", metavar="NAME",
                          help="A pin of a store built with several --rev (name, or commit prefix); default: the current.")


def _open_store(store: Path, pin: str | None):
    """The store's current build, or one of its pins."""
    if pin is None:
        return open_read_only(store)
    from pyoxigraph import Store

    from . import pins
    from .store import current_build

    build_dir = current_build(store)
    index = pins.read_index(build_dir) if build_dir else None
    found = index.find(pin) if index else None
    if found is None:
        known = ", ".join(p.name for p in index.pins) if index else "this store was built from one source"
        raise MgRdfError(f"{store}: no pin called {pin!r} ({known})")
    return Store.read_only(str(index.directory(found)))


def _open(source: Path | None, rev: str | None, commit: str | None, repository: str):
    if source is None:
        src = open_source(SAMPLE_CORPUS, commit=commit, repository="")
        src.provenance.location = "entities/ of mg-rdf"
        return src, SAMPLE_TITLE
    return open_source(source, rev=rev, commit=commit, repository=repository), CORPUS_TITLE


source_arguments = [
    click.argument("source", required=False, type=click.Path(path_type=Path)),
    click.option("--rev", help="Tag or commit to read when SOURCE is a git repository or bundle."),
    click.option("--commit", help="The corpus commit a plain folder was taken from (for provenance)."),
    click.option("--repository", default=DEFAULT_REPOSITORY, show_default=True,
                 help="Public repository the corpus comes from (for provenance and attribution)."),
]


def with_source(f):
    for decorator in reversed(source_arguments):
        f = decorator(f)
    return f


def _progress_bar():
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bar:
            bar[stage] = tqdm(total=total, desc=stage, unit="file", leave=False, file=sys.stderr)
        bar[stage].n = done
        bar[stage].refresh()
        if done >= total - 50:
            bar[stage].close()

    return progress


def _report(problems: list[Problem], limit: int | None = None) -> None:
    by_file: dict[str, list[Problem]] = defaultdict(list)
    for p in problems:
        by_file[p.path].append(p)
    shown = 0
    for path in sorted(by_file):
        click.echo(click.style(path, bold=True))
        for p in sorted(by_file[path], key=lambda p: (p.line or 0, p.field or "", p.message)):
            tag = {"violation": "error", "warning": "warning", "info": "info"}[p.severity.value]
            colour = {"error": "red", "warning": "yellow", "info": "blue"}[tag]
            click.echo(f"  {p.format()}  [{click.style(tag, fg=colour)}]")
            shown += 1
            if limit is not None and shown >= limit:
                click.echo(f"  … {len(problems) - shown} more (use --all to see every problem)")
                return


def _summary(a: Analysis, triples: int | None = None, wall: float | None = None) -> str:
    n = len(a.index.by_id) if a.index else 0
    parts = [f"{n} entities from {a.files} files"]
    if triples is not None:
        parts.append(f"{triples} triples")
    parts += [f"{a.violations} violations", f"{a.warnings} warnings",
              f"{wall if wall is not None else sum(a.seconds.values()):.2f} s ("
              + ", ".join(f"{k} {v:.2f}" for k, v in a.seconds.items()) + ")"]
    return ", ".join(parts)


@main.command("build")
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--rev", "revs", multiple=True,
              help="Tag or commit to read when SOURCE is a git repository or bundle. Repeat it to build "
                   "several pins into one store (e.g. --rev v1.0.0 --rev v2.0.0 --rev HEAD).")
@click.option("--current", "current_rev", metavar="REV",
              help="With several --rev: the pin the store serves by default (default: the last --rev).")
@click.option("--commit", help="The corpus commit a plain folder was taken from (for provenance).")
@click.option("--repository", default=DEFAULT_REPOSITORY, show_default=True,
              help="Public repository the corpus comes from (for provenance and attribution).")
@click.option("--strict", is_flag=True, help="Refuse the build on any violation or warning (of any pin).")
@click.option("--full", is_flag=True, help="Rebuild everything, even files unchanged since the last build (a remote store: send every graph again, not only those that changed).")
@click.option("--workers", type=int, default=None, help="Validation processes (default: one per core, at most 2).")
@click.option("--pages/--no-pages", default=False, envvar="MG_RDF_PAGES", show_default=True,
              help="Also precompute every entity page and data document, so `serve` answers them in a few "
                   "ms instead of reading the store per request. Costly: ~30 s of one core for the real "
                   "corpus on a full build (env MG_RDF_PAGES=1).")
@click.option("--all", "show_all", is_flag=True, help="Print every problem, not only the first 50.")
@store_option
@base_option
@without_cyclic_collection   # a one-shot process: its report sorts and prints thousands of problems too
def build_command(source, revs, current_rev, commit, repository, strict, full, workers, pages, show_all, store,
                  base):
    """Build SOURCE (a corpus folder, git clone or bundle; default: the bundled sample) into the store.

    With several --rev, each revision becomes a pin of the store (its own database), the diff between
    consecutive pins is kept, and renamed ids of earlier pins redirect to their new ids."""
    if len(revs) > 1 or (current_rev and revs):
        _build_pins(source, list(revs), current_rev, repository, strict, full, workers, show_all, store, base,
                    pages)
        return
    if current_rev:
        raise click.UsageError("--current chooses among several --rev values")
    rev = revs[0] if revs else None
    try:
        src, title = _open(source, rev, commit, repository)
        if isinstance(store, str):   # a remote SPARQL store
            from .build import build_remote

            result = build_remote(src, store, DataIris(base), strict=strict, workers=workers, title=title,
                                  full=full, progress=_progress_bar())
        else:
            result = build(src, store, DataIris(base), strict=strict, workers=workers, title=title, full=full,
                           progress=_progress_bar(), pages=_page_writer(pages))
    except BuildRefused as e:
        _report(e.analysis.sorted_problems(), None if show_all else 50)
        raise click.ClickException(str(e)) from None
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    a = result.analysis
    problems = a.sorted_problems()
    if problems:
        _report(problems, None if show_all else 50)
    how = (f"incremental, {result.rebuilt} entities re-read" if result.incremental
           else f"remote, one update request: {result.graphs_sent} of {result.graphs} graphs sent, "
                f"{result.sent} quads" if isinstance(store, str) else "full")
    click.echo(f"built {result.store_path} ({how}): " + _summary(a, result.triples, result.wall))


def _page_writer(pages: bool):
    """``--pages``: the web layer's writer of precomputed pages, which the build calls per database."""
    if not pages:
        return None
    from .web.page_data import write

    return write


def _build_pins(source, revs, current_rev, repository, strict, full, workers, show_all, store, base,
                pages) -> None:
    from .pin_build import build_pins

    if source is None:
        raise click.UsageError("several --rev need SOURCE: a git repository or bundle")
    try:
        result = build_pins(source, revs, store, DataIris(base), current=current_rev, strict=strict,
                            workers=workers, full=full, progress=_progress_bar(), repository=repository,
                            pages=_page_writer(pages))
    except BuildRefused as e:
        _report(e.analysis.sorted_problems(), None if show_all else 50)
        raise click.ClickException(str(e)) from None
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    problems = result.analysis.sorted_problems()
    if problems:
        _report(problems, None if show_all else 50)
    for pin in result.pins:
        load = result.loads[pin.key]
        how = f"incremental, {load.rebuilt} entities re-read" if load.previous is not None else "full"
        mark = " (current)" if pin.current else ""
        click.echo(f"pin {pin.name}{mark} at {pin.short}, {how}: "
                   + _summary(load.analysis, load.triples, load.seconds))
    for d in result.diffs:
        c = d.counts()
        click.echo(f"{d.old.name} → {d.new.name}: {c['added']} added, {c['removed']} removed, "
                   f"{c['renamed']} renamed, {c['modified']} modified, {d.unchanged} unchanged")
    if result.renames:
        click.echo(f"{len(result.renames)} renamed id(s) of earlier pins redirect to their new ids")
    click.echo(f"built {result.store_path} ({len(result.pins)} pins, problems listed for the current one; "
               f"mg-rdf validate SOURCE --rev REV lists another's) in {result.wall:.2f} s")


@main.command("diff")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("old_rev")
@click.argument("new_rev")
@click.option("--format", "fmt", type=click.Choice(["summary", "ttl", "nq", "jsonld", "nt"]), default="summary",
              show_default=True, help="A summary for people, or the changeset as RDF (see ontology/mg-changes.ttl).")
@click.option("--all", "show_all", is_flag=True, help="List every entity in the summary, not only 20 per kind.")
@click.option("--repository", default=DEFAULT_REPOSITORY, show_default=True,
              help="Public repository the corpus comes from (for provenance).")
@base_option
def diff_command(source, old_rev, new_rev, fmt, show_all, repository, base):
    """What changed from OLD_REV to NEW_REV of SOURCE (a git repository or bundle), entity by entity:
    added, removed, renamed, and the triples added and removed in each modified entity."""
    from .diff import serialize_diff, summary_text
    from .pin_build import diff_revisions

    iris = DataIris(base)
    try:
        d = diff_revisions(source, old_rev, new_rev, iris, repository)
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    if fmt == "summary":
        click.echo(summary_text(d, iris, None if show_all else 20), nl=False)
    else:
        sys.stdout.buffer.write(serialize_diff(d, fmt, iris))
        sys.stdout.flush()


@main.command("validate")
@with_source
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too.")
@click.option("--shacl-report", type=click.Path(path_type=Path), help="Write the SHACL validation report (Turtle) here.")
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON lines.")
@click.option("--workers", type=int, default=None)
@base_option
def validate_command(source, rev, commit, repository, strict, shacl_report, as_json, workers, base):
    """Check SOURCE against the shapes and the corpus's integrity rules; exit 1 on violations."""
    try:
        src, _ = _open(source, rev, commit, repository)
        a = analyse(src, DataIris(base), workers=workers, want_report=shacl_report is not None)
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    problems = a.sorted_problems()
    if as_json:
        for p in problems:
            click.echo(json.dumps({"path": p.path, "line": p.line, "field": p.field, "message": p.message,
                                   "value": p.value, "severity": p.severity.value, "rule": p.rule},
                                  ensure_ascii=False))
    else:
        _report(problems)
        rules = Counter(p.rule for p in problems)
        click.echo(_summary(a) + (" — " + ", ".join(f"{r} {n}" for r, n in rules.most_common()) if rules else ""))
    if shacl_report is not None and a.shacl_report is not None:
        a.shacl_report.serialize(destination=str(shacl_report), format="turtle")
    if a.violations or (strict and a.warnings):
        sys.exit(1)


@main.command("dump")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="ttl", show_default=True)
@click.option("--gzip", "compress", is_flag=True, help="Compress with gzip (deterministic: no timestamp).")
@click.argument("out", type=click.Path(path_type=Path))
@pin_option
@store_option
@base_option
def dump_command(fmt, compress, out, pin, store, base):
    """Write the whole dataset to OUT, byte-identical for the same input."""
    try:
        s = _open_store(store, pin)
        iris = DataIris(base)
        t0 = time.perf_counter()
        dump_to_path(s, fmt, out, iris, stored_attribution(s, iris), compress)
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {out} ({out.stat().st_size} bytes, {time.perf_counter() - t0:.2f} s)")


@main.command("query")
@click.argument("sparql", required=False)
@click.option("--name", "query_name", metavar="NAME", help="Run the named query NAME from queries/ (see --list).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A parameter of the named query (repeatable), checked as the web API checks it.")
@click.option("--limit", type=int, default=None,
              help="Rows per page of a paginated named query (default 100, at most 1000).")
@click.option("--offset", type=int, default=None, help="Rows to skip in a paginated named query.")
@click.option("--list", "list_queries", is_flag=True, help="List the named queries and their parameters.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "tsv", "json", "srj", "xml"]), default=None,
              help="Output format (default: a table on a terminal, CSV otherwise). Named queries: table, csv, "
                   "json (rows as objects) or srj (SPARQL results JSON).")
@pin_option
@store_option
@base_option
def query_command(sparql, query_name, params, limit, offset, list_queries, fmt, pin, store, base):
    """Run a SPARQL query over the store (the default graph is the union of all graphs), or a named query."""
    from .config import QUERIES_DIR
    from .named_queries import cli_list, cli_run
    from .querying import format_results, run_query

    if list_queries:
        click.echo(cli_list(QUERIES_DIR), nl=False)
        return
    if (sparql is None) == (query_name is None):
        raise click.UsageError("give a SPARQL query or --name NAME (mg-rdf query --list shows the names)")
    if sparql is not None and (params or limit is not None or offset is not None):
        raise click.UsageError("--param, --limit and --offset go with --name")
    fmt = fmt or ("table" if sys.stdout.isatty() else "csv")
    try:
        s = _open_store(store, pin)
        if query_name:
            out, note = cli_run(s, QUERIES_DIR, query_name, params, fmt, DataIris(base), limit, offset)
        else:
            out, note = format_results(run_query(s, sparql, base), "json" if fmt == "srj" else fmt), None
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    if note:
        click.echo(note, err=True)   # e.g. "rows 1-100 of 783; next page: --offset 100"


@main.command("stats")
@click.option("--json", "as_json", is_flag=True)
@pin_option
@store_option
@base_option
def stats_command(as_json, pin, store, base):
    """Counts of the built store: entities by type, triples, graphs, provenance."""
    from .querying import store_stats

    try:
        s = _open_store(store, pin)
        stats = store_stats(s, DataIris(base))
    except MgRdfError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    for key, value in stats.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k:<14} {v}")
        else:
            click.echo(f"{key}: {value}")


# The commands that publish (serve, reconcile) live in cli_web.py; importing it registers them.
from . import cli_web  # noqa: E402,F401
