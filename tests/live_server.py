"""Start a real `mg-rdf serve` process on 127.0.0.1 for protocol tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    url: str           # http://127.0.0.1:PORT (no trailing slash)
    log: Path

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_server(store: Path, *args: str, log_dir: Path | None = None, env: dict | None = None,
                 timeout: float = 60.0) -> LiveServer:
    """Run `mg-rdf serve --store STORE --port <free>` and wait until it answers. Its processes answer
    /sparql from disk unless ``args`` set ``--memory-copy-up-to``: until a process's in-memory copy
    is made, its answers to queries without ORDER BY may list rows in another order than the
    others' (web/memory_copy.py), which tests comparing answers across connections must not see;
    tests/test_memory_copy.py serves with the copies."""
    if "--memory-copy-up-to" not in args:
        args = (*args, "--memory-copy-up-to", "0")
    port = free_port()
    log = (log_dir or store.parent) / f"server-{port}.log"
    cmd = [sys.executable, "-c", "from mg_rdf.cli import main; main()", "serve", "--store", str(store),
           "--host", "127.0.0.1", "--port", str(port), *args]
    fh = open(log, "wb")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mg-rdf serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                # Closed by the server as it answers: a probe connection the client closed could
                # otherwise still count among a busy process's connections (it notices the close
                # only when its request ends), which upsets tests of how connections are shared.
                requests.get(url + "/", timeout=5, headers={"Connection": "close"})
                return LiveServer(proc, url, log)
            except requests.RequestException:  # not listening yet, or slow on a loaded machine
                time.sleep(0.1)
        raise RuntimeError(f"mg-rdf serve did not answer within {timeout} s: {log.read_text()[-2000:]}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
