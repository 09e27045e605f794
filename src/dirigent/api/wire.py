"""Messages between ``dirigent server``'s HTTP front and its engine process: frames and failures.

A frame is a 4-byte big-endian length and a pickled message:

- front to engine: ``(id, action, request)``, or ``(id, None, None)`` (:data:`CANCEL`)
  when the caller of a call in flight went away, or ``(0, READY, None)`` once,
  when the front serves;
- engine to front: ``(id, True, answer)`` or ``(id, False, failure)``, where a
  failure is ``(kind, code, message, status)`` (see :func:`failure_of`).

Why pickle and not JSON: answers hold datetimes (a describe's dates), which
JSON would need a tagging pass over every answer to carry, and pickle is the
fastest codec Python has for dicts of strings. Unpickling runs code named in
the data, so it is only safe between parties that trust each other: the two
ends are a ``socketpair`` made by the engine process for the front it spawns,
reachable by no one else (no path, no port).

This module must never touch a socket: it turns messages into bytes and back.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

from dirigent.api.protocol import ApiError
from dirigent.engine import errors as engine_errors
from dirigent.engine.errors import ServiceError

_LENGTH = struct.Struct("!I")
#: far above any request (1 MiB bodies) or answer (a 25,000-event history)
MAX_FRAME = 256 * 2**20

#: the action of a frame that cancels the call with its id
CANCEL = None
#: the action of the frame a front sends once it serves HTTP
READY = "dirigent:ready"

#: failure kinds
SERVICE, API, CANCELLED, INTERNAL = "service", "api", "cancelled", "internal"


class FrameError(Exception):
    """The byte stream is not a sequence of frames: the link is broken, not one call."""


class EngineFailure(Exception):
    """The engine failed on a call for a reason that is not the caller's: a bug, or its store."""


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class Frames:
    """Reassembles frames from chunks as they arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Any]:
        """The messages completed by ``chunk``, in order; raises :class:`FrameError`."""
        buffer = self._buffer
        buffer += chunk
        messages = []
        start, end = 0, len(buffer)
        # One view for the whole chunk: slicing the bytearray would copy each frame.
        with memoryview(buffer) as view:
            while end - start >= 4:
                (size,) = _LENGTH.unpack_from(view, start)
                if size > MAX_FRAME:
                    raise FrameError(f"a frame of {size} bytes is over the {MAX_FRAME}-byte bound")
                if end - start - 4 < size:
                    break
                try:
                    messages.append(pickle.loads(view[start + 4 : start + 4 + size]))
                except Exception as exc:
                    raise FrameError(f"a frame does not decode: {exc}") from exc
                start += 4 + size
        del buffer[:start]
        return messages


def _service_classes() -> dict[str, type[ServiceError]]:
    classes: dict[str, type[ServiceError]] = {}
    for value in vars(engine_errors).values():
        if isinstance(value, type) and issubclass(value, ServiceError):
            classes.setdefault(value.code, value)
    return classes


_SERVICE_CLASSES = _service_classes()


def failure_of(error: BaseException) -> tuple[str, str, str, int]:
    """What crosses the link for an action that raised ``error``."""
    if isinstance(error, ServiceError):
        return (SERVICE, error.code, error.message, error.status)
    if isinstance(error, ApiError):
        return (API, error.code, error.message, error.status)
    if isinstance(error, asyncio.CancelledError):
        return (CANCELLED, "", "", 0)
    return (INTERNAL, type(error).__name__, str(error), 500)


def error_of(failure: tuple[str, str, str, int]) -> BaseException:
    """The exception a handler sees for a failure that crossed the link.

    A service error comes back as the engine's own class for its code, so
    ``except ExecutionDoesNotExist`` works on either side of the link.
    """
    kind, code, message, status = failure
    if kind == SERVICE:
        cls = _SERVICE_CLASSES.get(code)
        if cls is not None and cls.status == status:
            return cls(message)
        # A code with no class of its own here: keep what was sent.
        error = ServiceError(message)
        error.code, error.status = code, status
        return error
    if kind == API:
        return ApiError(code, message, status)
    if kind == CANCELLED:
        return asyncio.CancelledError()
    return EngineFailure(f"{code}: {message}")
