"""How every handle calls the native orbit: an operation and its arguments as JSON in,
the answer as JSON out. Imported by ``_orbit`` and ``_handles``, importing neither."""

from __future__ import annotations

import json
from typing import Any, Protocol

from . import _native


class HasNative(Protocol):
    """Anything that holds a native orbit (:class:`Orbit`, :class:`AsyncOrbit`)."""

    _native: _native.NativeOrbit


def call(native: _native.NativeOrbit, op: str, **args: Any) -> Any:
    """Runs ``op`` with ``args`` (blocking, the GIL released) and returns its answer."""
    return json.loads(native.call(json.dumps({"op": op, **args})))


async def call_async(native: _native.NativeOrbit, op: str, **args: Any) -> Any:
    """:func:`call` for asyncio."""
    return json.loads(await native.call_async(json.dumps({"op": op, **args})))
