"""The data plane's wire handling on real sockets: pipelining, bodies in pieces, slow peers.

The proxy parses in asyncio Protocols and relays bodies as they arrive; these
tests drive it with raw bytes from both ends, so framing, ordering and flow
control are checked where a well-behaved client would never reach.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from dirigent.mesh import upstream as upstream_wire
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.wire import ServerConnection

from .kit import on_uvloop, policy

#: serves one upstream connection from its streams
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request whose body has a content-length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its path and body."""
    try:
        while True:
            head, body = await read_request(reader)
            text = head.split(b" ")[1] + b":" + body
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(text), text))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def start(serve: Serve) -> tuple[Proxy, asyncio.Server, asyncio.Server, int]:
    upstream = await asyncio.start_server(serve, "127.0.0.1", 0)
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", upstream.sockets[0].getsockname()[1])])
    loop = asyncio.get_running_loop()
    proxy = Proxy(policy(), table, clock=loop.time, rng=random.Random(1))
    server = await proxy.listen()
    return proxy, server, upstream, server.sockets[0].getsockname()[1]


def stop(proxy: Proxy, *servers: asyncio.Server) -> None:
    for server in servers:
        server.close()
    proxy.close()


async def response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one response with a content-length."""
    return await read_request(reader)


def get(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nhost: payments\r\n\r\n"


@on_uvloop
async def test_pipelined_requests_are_answered_in_order() -> None:
    proxy, server, upstream, port = await start(echo)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(get(b"/one") + get(b"/two") + get(b"/three"))
        bodies = [(await response(reader))[1] for _ in range(3)]
    finally:
        writer.close()
        stop(proxy, server, upstream)
    assert bodies == [b"/one:", b"/two:", b"/three:"]


@on_uvloop
async def test_a_request_body_split_across_many_reads_arrives_whole() -> None:
    proxy, server, upstream, port = await start(echo)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = bytes(range(256)) * 40
    try:
        request = b"POST /pay HTTP/1.1\r\nhost: payments\r\ncontent-length: %d\r\n\r\n" % len(body)
        whole = request + body
        for i in range(0, len(whole), 997):
            writer.write(whole[i : i + 997])
            await writer.drain()
            await asyncio.sleep(0.001)
        _, answer = await response(reader)
    finally:
        writer.close()
        stop(proxy, server, upstream)
    assert answer == b"/pay:" + body


@on_uvloop
async def test_chunked_request_and_chunked_response_both_pass() -> None:
    seen: list[bytes] = []

    async def chunked_back(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 4):
            piece = body[i : i + 4]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy, server, upstream, port = await start(chunked_back)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST / HTTP/1.1\r\nhost: payments\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        text = b""
        while (size := int((await reader.readuntil(b"\r\n"))[:-2], 16)) > 0:
            text += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
    finally:
        writer.close()
        stop(proxy, server, upstream)
    # The upstream got the body with a length, and the client got it back chunked.
    assert b"content-length: 12" in seen[0]
    assert b"transfer-encoding" not in seen[0]
    assert b"transfer-encoding: chunked" in head
    assert text == b"hello, world"


@on_uvloop
async def test_an_upstream_closing_mid_response_cuts_the_client_and_the_next_connection_works() -> (
    None
):
    calls = [0]

    async def breaks_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        calls[0] += 1
        if calls[0] == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    proxy, server, upstream, port = await start(breaks_first)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get(b"/"))
        head = await reader.readuntil(b"\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 5)  # ends: the proxy closed the connection
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get(b"/"))
        _, second = await asyncio.wait_for(response(reader), 5)
        writer.close()
    finally:
        stop(proxy, server, upstream)
    assert b"content-length: 100" in head
    assert rest == b"0123456789"
    assert second == b"ok"


@on_uvloop
async def test_a_slow_client_stops_the_proxy_reading_its_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Checked on the proxy's own connections, not by how much the upstream
    # still holds: the kernel autotunes loopback buffers (here up to 32 MiB for
    # receiving), so bytes in flight may all sit in socket buffers on some runs.
    size = 16 * 2**20
    upstreams: list[upstream_wire.Connection] = []
    clients: list[ServerConnection] = []
    seen: dict[str, object] = {}
    done = asyncio.Event()

    connect = upstream_wire.Pool.connect

    async def recording_connect(
        pool: upstream_wire.Pool, address: tuple[str, int]
    ) -> upstream_wire.Connection:
        connection = await connect(pool, address)
        upstreams.append(connection)
        return connection

    made = ServerConnection.connection_made

    def recording_made(connection: ServerConnection, transport: asyncio.BaseTransport) -> None:
        clients.append(connection)
        made(connection, transport)

    monkeypatch.setattr(upstream_wire.Pool, "connect", recording_connect)
    monkeypatch.setattr(ServerConnection, "connection_made", recording_made)

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"z" * size)
        await asyncio.sleep(0.5)  # the client reads nothing meanwhile
        try:
            (to_upstream,) = upstreams
            (to_client,) = clients
            assert to_upstream.transport is not None
            assert to_client.transport is not None
            seen["reading upstream"] = to_upstream.transport.is_reading()
            seen["held for the client"] = to_client.transport.get_write_buffer_size()
            seen["high water"] = to_client.transport.get_write_buffer_limits()[1]
        finally:
            done.set()
        await writer.drain()
        writer.close()

    proxy, server, upstream, port = await start(large)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(get(b"/big"))
        await done.wait()
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(size)
    finally:
        writer.close()
        stop(proxy, server, upstream)
    assert b"content-length: %d" % size in head
    assert body == b"z" * size
    # The proxy stopped reading its upstream, and what it holds for the client
    # is its write buffer's high-water mark and one read more, not the body.
    assert seen["reading upstream"] is False
    held, high = seen["held for the client"], seen["high water"]
    assert isinstance(held, int)
    assert isinstance(high, int)
    assert high < held <= high + 2**20


@on_uvloop
async def test_a_head_request_gets_the_head_only_and_the_connection_goes_on() -> None:
    async def head_aware(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, _ = await read_request(reader)
                extra = b"" if head.startswith(b"HEAD") else b"hello"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n" + extra)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    proxy, server, upstream, port = await start(head_aware)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"HEAD / HTTP/1.1\r\nhost: payments\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(get(b"/after"))
        _, body = await asyncio.wait_for(response(reader), 5)
    finally:
        writer.close()
        stop(proxy, server, upstream)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"hello"


@on_uvloop
async def test_bytes_that_are_not_http_get_400_and_a_close() -> None:
    proxy, server, upstream, port = await start(echo)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\x00\x01 not http at all\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        stop(proxy, server, upstream)
    assert answer.startswith(b"HTTP/1.1 400")


@on_uvloop
async def test_with_reuse_port_two_workers_listen_on_one_port() -> None:
    proxy, server, upstream, port = await start(echo)
    server.close()
    await server.wait_closed()
    loop = asyncio.get_running_loop()
    second = Proxy(policy(), proxy.endpoints, clock=loop.time, rng=random.Random(2))
    first_server = await proxy.listen("127.0.0.1", port, reuse_port=True)
    second_server = await second.listen("127.0.0.1", port, reuse_port=True)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get(b"/either"))
        _, body = await asyncio.wait_for(response(reader), 5)
        writer.close()
    finally:
        stop(second, second_server)
        stop(proxy, first_server, upstream)
    assert body == b"/either:"
