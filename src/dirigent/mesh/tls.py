"""TLS contexts for one service's listeners, and their rotation before expiry.

A :class:`ServiceTls` holds three :class:`ssl.SSLContext` objects built from
the service's :class:`~dirigent.mesh.ca.Identity`: ``strict`` (a server that
requires a client certificate from the mesh CA), ``permissive`` (a server
that accepts one but does not insist) and ``client`` (for the outbound side,
presenting the identity and checking the callee's). :meth:`ServiceTls.rotate`
loads a new identity into the same contexts: OpenSSL copies the certificate
into each connection at its handshake, so connections already established
carry on with the old one while new handshakes get the new one. No listener
restarts and no connection drops.

:class:`Rotator` is the thin loop that renews an identity when
:mod:`dirigent.mesh.policy.rotation` says it is due.

This module must never choose a certificate's lifetime or sign anything:
that is the CA's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable

from dirigent.mesh.identity import Identity
from dirigent.mesh.policy import rotation


class ServiceTls:
    """The TLS contexts of one service's listeners, all reloaded together on rotation."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.strict = _context(ssl.Purpose.CLIENT_AUTH, ssl.CERT_REQUIRED)
        self.permissive = _context(ssl.Purpose.CLIENT_AUTH, ssl.CERT_OPTIONAL)
        self.client = _context(ssl.Purpose.SERVER_AUTH, ssl.CERT_REQUIRED)
        # Callees are checked by the SPIFFE ID in their certificate after the
        # handshake (the proxy compares it with the destination's identity), not
        # by a DNS name: an endpoint is an address, not a host name.
        self.client.check_hostname = False
        self._load(identity)

    def rotate(self, identity: Identity) -> None:
        """Present ``identity`` on every handshake from now on."""
        if identity.spiffe_id != self.identity.spiffe_id:
            raise ValueError(f"cannot rotate {self.identity.spiffe_id} into {identity.spiffe_id}")
        self._load(identity)
        self.identity = identity

    def _load(self, identity: Identity) -> None:
        # The ssl module loads keys only from files: write them to a private
        # directory for the moment it takes, then remove them.
        with tempfile.TemporaryDirectory(prefix="dirigent-tls-") as folder:
            os.chmod(folder, 0o700)
            cert_file, key_file = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            with open(cert_file, "wb") as out:
                out.write(identity.certificate_pem)
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(identity.key_pem)
            trust = identity.trust_pem.decode("ascii")
            for context in (self.strict, self.permissive, self.client):
                context.load_cert_chain(cert_file, key_file)
                context.load_verify_locations(cadata=trust)


def _context(purpose: ssl.Purpose, verify: ssl.VerifyMode) -> ssl.SSLContext:
    context = ssl.SSLContext(
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = verify
    return context


#: issues a fresh identity for the service (the CA, or a client of a remote one)
Issue = Callable[[], Identity]


class Rotator:
    """Renews a service's identity when it is due, for as long as it runs."""

    def __init__(
        self,
        tls: ServiceTls,
        issue: Issue,
        *,
        wall: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        fraction: float = rotation.DEFAULT_RENEW_FRACTION,
    ) -> None:
        self.tls = tls
        self._issue = issue
        self._wall = wall
        self._sleep = sleep
        self._fraction = fraction
        self.rotations = 0

    async def run(self) -> None:
        while True:
            current = self.tls.identity
            wait = rotation.seconds_until_renewal(
                current.not_before, current.not_after, self._wall(), self._fraction
            )
            await self._sleep(wait)
            self.tls.rotate(self._issue())
            self.rotations += 1

    def start(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
