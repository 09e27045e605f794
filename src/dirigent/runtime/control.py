"""The control protocol between ``dirigent up`` and the other commands: message shapes only.

A command connects to the Unix socket of the running ``up``, writes one
request as a line of JSON and reads one reply line back; then the connection
ends. Requests and replies are frozen dataclasses; :func:`encode` and the
``decode_*`` functions turn them into bytes and back, and say whose fault a
malformed message is (:class:`ProtocolError` carries ``remote``).

    {"op": "status"}                              -> {"ok": true, "body": {...}}
    {"op": "ps"}                                  -> {"ok": true, "body": {"replicas": [...]}}
    {"op": "scale", "service": "web", "replicas": 3}
    {"op": "restart", "service": "web"}
    {"op": "apply"}
    {"op": "fault", "service": "payments", "delay": 3.0, "delay_percent": 50,
     "abort": 503, "abort_percent": 0}        (all zero: clear the fault)
    {"op": "down"}
    any request the server refuses                -> {"ok": false, "error": "..."}

Pure: this module never opens a socket, reads a clock or touches a process;
the socket server and client live in :mod:`dirigent.runtime.channel`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from dirigent.errors import DirigentError

#: a request or reply longer than this is refused rather than buffered
MAX_MESSAGE_BYTES = 1 << 20


class ProtocolError(DirigentError):
    """A message that does not follow the protocol; ``remote`` says the other side sent it."""

    def __init__(self, message: str, *, remote: bool) -> None:
        super().__init__(message)
        self.remote = remote


@dataclass(frozen=True, slots=True)
class Status:
    """Is it running, and has every service its replicas ready?"""


@dataclass(frozen=True, slots=True)
class ListReplicas:
    """The rows of ``dirigent ps``."""


@dataclass(frozen=True, slots=True)
class Scale:
    """Run ``replicas`` copies of ``service`` until the next apply."""

    service: str
    replicas: int


@dataclass(frozen=True, slots=True)
class Restart:
    """Replace every replica of ``service``, rolling as its ``rollout`` allows."""

    service: str


@dataclass(frozen=True, slots=True)
class Apply:
    """Re-read the manifest; roll out what changed."""


@dataclass(frozen=True, slots=True)
class InjectFault:
    """Delay or abort a share of the requests ``service`` receives, through the mesh.

    Zero percentages clear the fault. It lasts until the next apply or another
    fault request for the service.
    """

    service: str
    delay: float = 0.0
    delay_percent: float = 0.0
    abort: int = 0
    abort_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class Down:
    """Stop every replica, then the control plane itself."""


Request: TypeAlias = Status | ListReplicas | Scale | Restart | Apply | InjectFault | Down


@dataclass(frozen=True, slots=True)
class Done:
    """The request was carried out; ``body`` is JSON-ready data for the command to print."""

    body: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Refused:
    """The request was understood but cannot be carried out (an unknown service, say)."""

    error: str


Reply: TypeAlias = Done | Refused

_OPS: dict[type[Request], str] = {
    Status: "status",
    ListReplicas: "ps",
    Scale: "scale",
    Restart: "restart",
    Apply: "apply",
    Down: "down",
}


def encode(message: Request | Reply) -> bytes:
    """One line of JSON, newline included."""
    payload: dict[str, object]
    match message:
        case Done(body):
            payload = {"ok": True, "body": dict(body)}
        case Refused(error):
            payload = {"ok": False, "error": error}
        case Scale(service, replicas):
            payload = {"op": "scale", "service": service, "replicas": replicas}
        case Restart(service):
            payload = {"op": "restart", "service": service}
        case InjectFault(service, delay, delay_percent, abort, abort_percent):
            payload = {
                "op": "fault", "service": service, "delay": delay,
                "delay_percent": delay_percent, "abort": abort, "abort_percent": abort_percent,
            }  # fmt: skip
        case _:
            payload = {"op": _OPS[type(message)]}
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> Request:
    """Parse a request line; a ProtocolError here is the client's fault (``remote``)."""
    payload = _object(line, remote=True)
    op = payload.get("op")
    if op == "status":
        return Status()
    if op == "ps":
        return ListReplicas()
    if op == "apply":
        return Apply()
    if op == "down":
        return Down()
    if op == "fault":
        return _fault(payload)
    if op in ("scale", "restart"):
        service = payload.get("service")
        if not isinstance(service, str) or not service:
            raise ProtocolError(f"{op}: 'service' must be a non-empty string", remote=True)
        if op == "restart":
            return Restart(service)
        replicas = payload.get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ProtocolError("scale: 'replicas' must be an integer >= 0", remote=True)
        return Scale(service, replicas)
    raise ProtocolError(f"unknown op {op!r}", remote=True)


def decode_reply(line: bytes) -> Reply:
    """Parse a reply line; a ProtocolError here is the server's fault (``remote``)."""
    payload = _object(line, remote=True)
    ok = payload.get("ok")
    if ok is True:
        body = payload.get("body", {})
        if not isinstance(body, dict):
            raise ProtocolError("reply 'body' must be an object", remote=True)
        return Done(MappingProxyType(body))
    if ok is False:
        error = payload.get("error")
        return Refused(error if isinstance(error, str) else "refused without a reason")
    raise ProtocolError("reply lacks a boolean 'ok'", remote=True)


def _object(line: bytes, *, remote: bool) -> dict[str, object]:
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message too long", remote=remote)
    try:
        payload = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}", remote=remote) from exc
    if not isinstance(payload, dict):
        raise ProtocolError("expected a JSON object", remote=remote)
    return payload


def _fault(payload: Mapping[str, object]) -> InjectFault:
    service = payload.get("service")
    if not isinstance(service, str) or not service:
        raise ProtocolError("fault: 'service' must be a non-empty string", remote=True)
    numbers: dict[str, float] = {}
    for key in ("delay", "delay_percent", "abort", "abort_percent"):
        value = payload.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ProtocolError(f"fault: {key!r} must be a number >= 0", remote=True)
        numbers[key] = float(value)
    if numbers["delay_percent"] > 100 or numbers["abort_percent"] > 100:
        raise ProtocolError("fault: percentages must be at most 100", remote=True)
    abort = int(numbers["abort"])
    if numbers["abort_percent"] and not 200 <= abort <= 599:
        raise ProtocolError("fault: 'abort' must be an HTTP status from 200 to 599", remote=True)
    return InjectFault(
        service, numbers["delay"], numbers["delay_percent"], abort, numbers["abort_percent"]
    )
