"""SPIRAL tests keep even the smallest compiled programs in the persistent compilation cache.

Eager code (the `variant` fixture's eager runs, environment wrappers, state setup) compiles each
operation on its own: hundreds of programs of ~20 ms, under the 0.5 s that `tests/conftest.py`
asks of a program before it is written to the cache. Cached, the eager run of `update` takes
2 s instead of 20 s from the second run on.
"""

import jax
import pytest


@pytest.fixture(autouse=True)
def _cache_small_programs():
    name = "jax_persistent_cache_min_compile_time_secs"
    previous = getattr(jax.config, name)
    jax.config.update(name, 0.0)
    yield
    jax.config.update(name, previous)
