"""Every cache the studio keeps in a process, in one place, each keyed so that it can never answer stale:

- `compiled`: compiled mappings, keyed by a hash of everything that affects compilation (a draft's text with the
  library as stored) or by a version's id and content hash. The keys are immutable content: an entry is only ever
  evicted, never wrong.
- `libraries`: the snippets and lookup tables a draft's references reach, keyed by those names. Each entry carries
  the (id, revision, updated_at) of every row it read and every name it found missing; mappings.compiling uses it
  only after one query shows that this is still what is stored, so a saved snippet or table is seen at once.
- `root_references`: what a draft's own template imports and which tables it names, keyed by its tokens without
  its literal text (mappings.compiling.root_references): the parser's whole input, so the same key reads the same.
- `facades` and `live_deployments`: a facade's settings, and what it serves per resource type, keyed by the
  facade's `generation`. Every change to a facade or what it serves (a deployment going live, a binding, a pause, its
  $convert-data list) grows the generation in the same transaction, and every facade request reads the generation
  (mappings.access), so every worker sees a deploy on its next request, not after a timeout.
- `search_totals`: how many resources a facade search matches, keyed by the index it counted (its build key) and the
  facade's generation: an index becomes live only through a swap, which grows the generation.

The engine's own caches (compiled Jinja code, plain and traced, and the skeleton code and recent tokens of
engine/reuse_compiled.py) are keyed by source checksum, token shape or text, so they cannot go stale either.
`clear()` empties every one, the engine's included: tests call it between databases, whose ids repeat."""

from __future__ import annotations

import functools
import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from mappings import engine
from mappings.engine import definitions, reuse_compiled

Value = TypeVar("Value")


class LRU(Generic[Value]):
    """A small thread-safe least-recently-used map. `build` runs outside the lock: compiling can take milliseconds,
    and two threads building the same key at once both get a correct value."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Value] = OrderedDict()
        self.lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], Value]) -> Value:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = build()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value

    def get(self, key: Hashable) -> Value | None:
        with self.lock:
            if key not in self.items:
                return None
            self.items.move_to_end(key)
            return self.items[key]

    def put(self, key: Hashable, value: Value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


compiled: LRU = LRU(256)
libraries: LRU = LRU(256)
root_references: LRU = LRU(64)
facades: LRU = LRU(256)
live_deployments: LRU = LRU(1024)
search_totals: LRU = LRU(4096)  # keyed by the index and the facade's generation (mappings.facade.search)
# facade slug → (id, generation) this worker last read: a read's guess at its deployment, checked (mappings.access)
facade_generations: LRU = LRU(256)
profile_registries: LRU = LRU(2)  # the core plus uploaded definitions, keyed by what is uploaded (mappings.profiles)


def clear() -> None:
    compiled.clear()
    libraries.clear()
    root_references.clear()
    facades.clear()
    live_deployments.clear()
    search_totals.clear()
    facade_generations.clear()
    profile_registries.clear()
    engine.clear_caches()
    reuse_compiled.clear_caches()


@functools.cache
def freeze_long_lived() -> None:
    """Once per long-lived process (a web or Celery worker, as it starts: fhirstudio/wsgi.py, fhirstudio/celery.py):
    load the FHIR definitions, then move everything alive into the collector's permanent generation. Django, Celery
    and the definitions (~1 M objects) live as long as the process, and a request or a chunk allocates so much that
    the collector would otherwise scan them again and again (~1.3 ms a render request, ~5 % of a batch chunk:
    bench/README.md)."""
    definitions.core()
    gc.freeze()
