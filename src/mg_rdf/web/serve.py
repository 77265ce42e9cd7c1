"""Serving the app with waitress (a production WSGI server), on 127.0.0.1 by default."""

from __future__ import annotations

import logging
from typing import Any

from waitress import serve as waitress_serve

from . import create_app


def serve(config: dict[str, Any], host: str = "127.0.0.1", port: int = 8080, threads: int = 16) -> None:
    app = create_app(config)
    logging.getLogger("waitress").setLevel(logging.INFO)
    print(f"serving {config.get('STORE_PATH')} at http://{host}:{port}/ (SPARQL: /sparql)", flush=True)
    waitress_serve(app, host=host, port=port, threads=threads, ident="mg-rdf",
                   channel_timeout=60, connection_limit=512, max_request_body_size=1 << 20)
