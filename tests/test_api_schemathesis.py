"""Property-based tests of the named-query API: schemathesis reads /api/openapi.json from a real
`mg-rdf serve` process over the real corpus and sends it requests made from the document.

Three phases: the declared examples; coverage (each parameter at and past its bounds, every enum
member, values that break the declared patterns, missing required parameters); and fuzzing
(values generated from the schemas). Every answer is checked: no 5xx, a status code the document
lists, the content type it lists, its declared headers, and a body that matches its schema.
Bounded by EXAMPLES per operation and a fixed seed, so a run is repeatable and takes well under a
minute on the 2-core machine.

schemathesis runs as its command-line tool here: its pytest plugin does not work with pytest 9.2
(schemathesis 4.32.5 reads a private ``Function._nodeid`` that pytest no longer has).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("schemathesis")

EXAMPLES = 10
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance")


def test_generated_requests_find_no_server_error_and_no_answer_outside_the_document(head_server, tmp_path):
    from mg_rdf import config
    from mg_rdf.named_queries import load_queries

    cli = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"
    run = subprocess.run(
        [sys.executable, "-c", cli, "run", head_server.url + "/api/openapi.json", "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES), "--seed", "20261126",
         "--workers", "2", "--request-timeout", "20", "--no-color", "--generation-database", "none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    operations = len(load_queries(config.QUERIES_DIR)) + 1   # each query, and the catalogue
    assert f"Operations:       {operations} selected / {operations} total" in report, report[-3000:]
    generated = int(re.search(r"(\d+) generated", report).group(1))
    assert generated >= operations * 10, f"only {generated} requests were made"
    assert "No issues found" in report
