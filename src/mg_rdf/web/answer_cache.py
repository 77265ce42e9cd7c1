"""Answers to repeated /sparql queries, kept in memory per build.

A key is everything that decides the bytes of an answer: the build (directory
and version), the query text, the dataset parameters, the negotiated format,
the result cap and the SERVICE settings. A new build has a new key, so nothing
needs invalidating; old entries fall out by least-recent use when the cache
passes its byte budget. Queries that call SERVICE are never cached (the remote
side may change). A client can skip the cache with ``Cache-Control: no-cache``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable


class AnswerCache:
    def __init__(self, max_bytes: int = 64 << 20, max_entry: int = 4 << 20):
        self.max_bytes, self.max_entry = max_bytes, max_entry
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.max_entry:
            return   # one big answer would push out many small ones
        with self._lock:
            if key in self._items:
                self._bytes -= self._sizes[key]
            self._items[key] = value
            self._items.move_to_end(key)
            self._sizes[key] = size
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                old, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
