"""Make a synthetic corpus N times the size of a real one, with consistent ids and references.

    .venv/bin/python benchmarks/multiply_corpus.py 100 /tmp/corpus-x100
    .venv/bin/python benchmarks/multiply_corpus.py 10 /tmp/corpus-x10 --corpus ../shared/corpus/movement-graph

Copy k of each entity gets the id ``<id>-x<k>`` (copy 0 keeps its id), and every
entity id in its frontmatter and every entity link in its body is renamed the
same way, so copy k is a self-consistent graph of the same shape as the
original: references resolve, the real defects are repeated, tags are shared.
The output is for benchmarks only; it stays outside the repository.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "movement-graph"
ID = re.compile(r"\b(?:org|lg|camp|event|strat|msg|fund|person|voice|pub)-[a-z0-9][a-z0-9-]*")


def multiply(corpus: Path, out: Path, times: int) -> int:
    files = sorted((corpus / "entities").glob("*/*.md"))
    ids = {p.stem for p in files}
    texts = [(p.relative_to(corpus), p.read_text(encoding="utf-8")) for p in files]
    written = 0
    for k in range(times):
        suffix = "" if k == 0 else f"-x{k}"

        def rename(m: re.Match[str]) -> str:
            token = m.group(0)
            # the longest known id the token starts with (tokens may run into a following word)
            while token and token not in ids:
                cut = token.rfind("-")
                if cut <= 0:
                    return m.group(0)
                token = token[:cut]
            return token + suffix + m.group(0)[len(token):] if token else m.group(0)

        for rel, text in texts:
            target = out / rel.parent / f"{rel.stem}{suffix}.md"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text if not suffix else ID.sub(rename, text), encoding="utf-8")
            written += 1
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("times", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    n = multiply(args.corpus, args.out, args.times)
    print(f"wrote {n} files to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
