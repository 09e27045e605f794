"""Shared pieces of the mesh's integration tests: a replica, clients (plain or TLS), a CA.

The replica answers every request with the headers the mesh added that a
service would read (``x-forwarded-client-cert``, ``traceparent``) echoed back
as ``x-seen-*`` response headers, so a test can see what reached it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop

from dirigent.manifest import parse_manifest
from dirigent.mesh import http1
from dirigent.mesh.ca import CertificateAuthority
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.identity import Identity
from dirigent.mesh.section import MESH_SECTIONS


def on_uvloop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(test(*args, **kwargs))

    return run


def policy(mesh_yaml: str = "  routes: {}\n", app: str = "shop") -> MeshPolicy:
    manifest = parse_manifest(f"app: {app}\nmesh:\n{mesh_yaml}", sections=MESH_SECTIONS)
    found = manifest.extensions["mesh"]
    assert isinstance(found, MeshPolicy)
    return found


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(app: str = "shop") -> CertificateAuthority:
    return CertificateAuthority.create(app, now=now())


def client_context(identity: Identity | None, trust: bytes) -> ssl.SSLContext:
    """A TLS client trusting ``trust``, presenting ``identity`` if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=trust.decode())
    if identity is not None:
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            cert, key = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
            with open(cert, "wb") as out:
                out.write(identity.certificate_pem)
            with open(key, "wb") as out:
                out.write(identity.key_pem)
            context.load_cert_chain(cert, key)
    return context


@dataclass
class Replica:
    """A service replica: answers 200 with ``name`` in ``x-served-by``, after ``delay``."""

    name: str = "replica"
    delay: float = 0.0
    status: int = 200
    served: int = 0
    connections: int = 0
    seen: list[http1.Message] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        self.connections += 1
        try:
            while (request := await reader.head()) is not None:
                body = await reader.whole_body(request, 2**20)
                self.served += 1
                self.seen.append(request)
                if self.delay:
                    await asyncio.sleep(self.delay)
                headers = [(b"x-served-by", self.name.encode())]
                for name in (b"x-forwarded-client-cert", b"traceparent"):
                    value = request.header(name)
                    if value is not None:
                        headers.append((b"x-seen-" + name, value))
                text = b"ok:" + body
                head = http1.response_head(self.status, headers, length=len(text), keep_alive=True)
                writer.write(head + text)
                await writer.drain()
        except (ConnectionError, http1.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.encode())
        return None if value is None else value.decode()


class Client:
    """A keep-alive HTTP/1.1 client, plain or over TLS."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.tls = tls
        self.reader: http1.MessageReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        stream, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.tls, server_hostname="" if self.tls else None
        )
        self.reader = http1.MessageReader(stream, responses=True)

    async def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        body: bytes = b"",
        host: str = "payments",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> Reply:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None
        assert self.writer is not None
        sent = [(b"host", host.encode()), *(headers or [])]
        self.writer.write(
            http1.request_head(method.encode(), path.encode(), sent, len(body)) + body
        )
        await self.writer.drain()
        response = await self.reader.head()
        if response is None:
            raise ConnectionResetError("the server closed the connection")
        text = b""
        while (piece := await self.reader.body_piece(response)) is not None:
            text += piece
        return Reply(response.status, dict(response.headers), text)

    def peer_certificate(self) -> bytes | None:
        assert self.writer is not None
        ssl_object = self.writer.get_extra_info("ssl_object")
        return None if ssl_object is None else ssl_object.getpeercert(binary_form=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = self.reader = None


async def refused(client: Client) -> bool:
    """Whether the server refuses ``client``: a failed handshake, or a close before any answer."""
    try:
        reply = await asyncio.wait_for(client.request(), timeout=15)
    except (OSError, ssl.SSLError, http1.ProtocolError, EOFError):
        return True
    finally:
        client.close()
    del reply
    return False
