"""Building several pins of a git corpus into one store (``mg-rdf build REPO --rev A --rev B``).

Every pin is built by the same ``load_pin`` a one-source build uses, into its own
Oxigraph database (see ``pins.py`` for the layout), from the same pin of the
previous build when there is one (a hard-linked copy, since a tag's files do
not change). Then, still before the swap:

- the diff between each pin and the next (by commit date) is computed from the
  pins' databases and kept beside them (``diff.py``);
- ids of earlier pins that were renamed by the current one are stated in the
  current pin's graph ``{BASE}graph/renames`` (``owl:sameAs`` and
  ``dcterms:isReplacedBy``), which the web app follows with a 301;
- the pin index is written.

Only then does ``STORE/current`` move, so all pins of a build become current
together, and a failure anywhere leaves the previous store serving.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import Literal, NamedNode, Quad, Store

from . import diff as diff_module, pins
from .assembly import entity_graphs
from .build import (BuildResult, PageWriter, PinLoad, Progress, blobs_of_build, load_pin, previous_build_for)
from .dataset import CORPUS_TITLE
from .diff import Diff, EntityState, PinRef, compare, content_from_quads, content_of_store, diff_iri, save
from .diff import load as load_diff
from .problems import MgRdfError
from .source import DEFAULT_REPOSITORY, GitSource
from .store import current_build, new_build
from .vocab import DCT, OWL, PROV, RDFS, DataIris
from .workers import without_cyclic_collection


@dataclass
class PinsResult(BuildResult):
    """A build of several pins: the current pin's result, plus every pin and diff."""

    pins: list[pins.PinInfo] = field(default_factory=list)
    loads: dict[str, PinLoad] = field(default_factory=dict)    # by pin key
    diffs: list[Diff] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)      # old id -> id in the current pin
    diff_seconds: float = 0.0                                  # computing (or reusing) the diffs


@without_cyclic_collection
def build_pins(location: Path, revs: list[str], store_path: Path, iris: DataIris, *, current: str | None = None,
               strict: bool = False, workers: int | None = None, title: str = CORPUS_TITLE, full: bool = False,
               progress: Progress | None = None, repository: str = DEFAULT_REPOSITORY,
               pages: PageWriter | None = None) -> PinsResult:
    """Build each revision of the git repository or bundle at ``location`` as a pin of one store.

    ``current`` (default: the last of ``revs``) is the pin ``STORE/current`` serves."""
    if not revs:
        raise MgRdfError("give at least one --rev")
    if len(set(revs)) != len(revs):
        raise MgRdfError("a --rev is given twice: " + ", ".join(sorted({r for r in revs if revs.count(r) > 1})))
    current = current or revs[-1]
    if current not in revs:
        raise MgRdfError(f"--current {current} is not one of the --rev values ({', '.join(revs)})")
    t0 = time.perf_counter()
    sources = [GitSource(location, rev, repository=repository) for rev in revs]   # unknown revs fail here
    keys: list[str] = []
    for rev in revs:
        keys.append(pins.pin_key(rev, set(keys)))
    by_key = dict(zip(keys, sources))
    current_key = keys[revs.index(current)]
    prev_dir = current_build(store_path) if store_path.is_dir() else None
    loads: dict[str, PinLoad] = {}
    with new_build(store_path) as nb:
        for key, src in by_key.items():
            if key == current_key:
                continue
            writer = nb.pin(key)
            loads[key] = load_pin(writer, nb.keep_sources, src, iris, previous_build_for(prev_dir, src),
                                  strict=strict, workers=workers, title=title, full=full,
                                  progress=_labelled(progress, key), pages=pages)
            writer.close(optimize=loads[key].previous is None)
        src = by_key[current_key]
        loads[current_key] = cur = load_pin(nb.main, nb.keep_sources, src, iris, previous_build_for(prev_dir, src),
                                            strict=strict, workers=workers, title=title, full=full,
                                            progress=_labelled(progress, current_key), pages=pages)
        order = sorted(keys, key=lambda k: (by_key[k].provenance.commit_date or "", keys.index(k)))
        refs = {k: PinRef(by_key[k].provenance.rev or k, k, by_key[k].provenance.commit,
                          by_key[k].provenance.commit_date) for k in keys}
        contents = _Contents(loads, {k: nb.main.store if k == current_key else nb.pin(k).directory for k in keys},
                             iris)
        earlier = pins.read_index(prev_dir) if prev_dir is not None else None
        diffs, diff_infos, t_diff = [], [], time.perf_counter()
        for a, b in zip(order, order[1:]):
            fp = _diff_fingerprint(loads[a].fingerprint, loads[b].fingerprint)
            d = _earlier_diff(earlier, fp, refs[a], refs[b])
            if d is None:
                d = compare(contents[a], contents[b], refs[a], refs[b], iris, by_key[b].renames_since(refs[a].commit))
            name = f"{pins.DIFFS_DIR}/{a}..{b}.json.gz"
            save(d, nb.pins_tmp / name)
            diffs.append(d)
            diff_infos.append(pins.DiffInfo(a, b, name, d.counts(), fp))
        diff_seconds = time.perf_counter() - t_diff
        up_to_current = order[:order.index(current_key) + 1]
        current_ids = set(loads[current_key].analysis.index.by_id)
        renames = _renames([d for d in diffs if d.new.key in up_to_current], current_ids)
        nb.load(_renames_graph(renames, diffs, up_to_current, iris))
        if pages is not None:
            # the renames graph came after the current pin's precomputed pages: redo the documents it is in
            pages(nb.main.store, nb.main.directory, iris, nb.main.directory, set())
        infos = [pins.PinInfo(refs[k].name, k, refs[k].commit, refs[k].date,
                              nb.build_id if k == current_key else f"{nb.build_id}.pins/{k}", k == current_key,
                              len(loads[k].analysis.index.by_id), loads[k].triples,
                              dict(sorted(loads[k].by_type.items())),
                              loads[k].analysis.violations, loads[k].analysis.warnings) for k in order]
        pins.write_index(nb.pins_tmp, current_key, infos, diff_infos)

        def write_manifests(final: Path) -> None:
            for k, load in loads.items():
                where = final if k == current_key else pins.pins_dir(final) / k
                load.write_manifest(where)

        path = nb.commit(on_complete=write_manifests, blobs_of=blobs_of_build, optimize=cur.previous is None)
    return PinsResult(cur.analysis, path, cur.triples, cur.by_type, cur.analysis.seconds, time.perf_counter() - t0,
                      incremental=cur.previous is not None, rebuilt=cur.rebuilt, pins=infos, loads=loads,
                      diffs=diffs, renames=renames, diff_seconds=diff_seconds)


class _Contents(dict):
    """Each pin's entities as the diff sees them, made when first asked for: from the mapping in
    memory when the pin was built in full (~0.5 s), else read back from its database (~2.5 s)."""

    def __init__(self, loads: dict[str, PinLoad], stores: dict[str, object], iris: DataIris):
        super().__init__()
        self.loads, self.stores, self.iris = loads, stores, iris

    def __missing__(self, key: str) -> dict[str, EntityState]:
        load, where = self.loads[key], self.stores[key]
        a = load.analysis
        if load.previous is None and a.index is not None:
            quads = (q for eg in entity_graphs(a.index, a.source.provenance, self.iris) for q in eg.quads)
            found = content_from_quads(quads, self.iris)
        else:
            store = Store.read_only(str(where)) if isinstance(where, Path) else where
            found = content_of_store(store, self.iris)
        self[key] = found
        return found


def _diff_fingerprint(old_fp: str, new_fp: str) -> str:
    """Two pins' build fingerprints and the diff code: equal fingerprints, equal diffs."""
    h = hashlib.sha1(f"{old_fp}\0{new_fp}".encode())
    h.update(Path(diff_module.__file__).read_bytes())
    return h.hexdigest()


def _earlier_diff(index: pins.PinIndex | None, fp: str, old: PinRef, new: PinRef) -> Diff | None:
    """The same diff kept by the previous build (tags do not move: rebuilding them changes nothing)."""
    if index is None:
        return None
    for info in index.diffs:
        if info.fingerprint == fp:
            try:
                d = load_diff(index.diff_path(info))
            except (OSError, ValueError, KeyError, TypeError):
                return None
            d.old, d.new = old, new
            return d
    return None


def _labelled(progress: Progress | None, key: str) -> Progress | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{key} {stage}", done, total)


def _renames(diffs: list[Diff], current_ids: set[str]) -> dict[str, str]:
    """Old id -> the id it has in the current pin, following renames across pins (a -> b -> c)."""
    step: dict[str, str] = {}
    for d in diffs:                       # oldest first: a later rename of the same id wins
        step.update(d.renames())
    out = {}
    for old in step:
        seen, new = {old}, step[old]
        while new in step and new not in seen:   # a chain of renames; a cycle stops it
            seen.add(new)
            new = step[new]
        if old not in current_ids and new in current_ids:
            out[old] = new
    return dict(sorted(out.items()))


def _renames_graph(renames: dict[str, str], diffs: list[Diff], keys: list[str], iris: DataIris) -> list[Quad]:
    """``{BASE}graph/renames``: each old id is the same thing as, and is replaced by, its new id."""
    g = NamedNode(iris.base + "graph/renames")
    quads = [Quad(g, NamedNode(RDFS + "comment"), Literal(
        "Entity ids of earlier pins that this pin renamed: each old IRI is owl:sameAs and "
        "dcterms:isReplacedBy its new IRI, and answers with a 301 to it."), g)]
    quads += [Quad(g, NamedNode(PROV + "wasDerivedFrom"), NamedNode(diff_iri(iris, d.old.key, d.new.key)), g)
              for d in diffs if d.new.key in keys]
    for old, new in renames.items():
        o, n = NamedNode(iris.entity(old)), NamedNode(iris.entity(new))
        quads += [Quad(o, NamedNode(OWL + "sameAs"), n, g), Quad(o, NamedNode(DCT + "isReplacedBy"), n, g),
                  Quad(n, NamedNode(DCT + "replaces"), o, g)]
    return quads


def diff_revisions(location: Path, old_rev: str, new_rev: str, iris: DataIris,
                   repository: str = DEFAULT_REPOSITORY) -> Diff:
    """``mg-rdf diff``: map both revisions in memory (no SHACL, no store) and compare them."""
    from .build import analyse

    old, new = GitSource(location, old_rev, repository=repository), GitSource(location, new_rev, repository=repository)
    contents = []
    for src in (old, new):
        a = analyse(src, iris, shacl=False)
        if a.index is None or not a.index.by_id:
            raise MgRdfError(f"{location}: no entity could be read at {src.provenance.rev}")
        quads = (q for eg in entity_graphs(a.index, src.provenance, iris) for q in eg.quads)
        contents.append(content_from_quads(quads, iris))
    keys = [pins.pin_key(old_rev)]
    keys.append(pins.pin_key(new_rev, set(keys)))
    refs = [PinRef(src.provenance.rev or key, key, src.provenance.commit, src.provenance.commit_date)
            for src, key in zip((old, new), keys)]
    renames = new.renames_since(old.provenance.commit or old_rev)
    return compare(contents[0], contents[1], refs[0], refs[1], iris, renames)
