"""A service's identity as its listeners use it: what a CA issued, and what a peer presented.

:class:`Identity` is the certificate, key and trust bundle (PEM) the
certificate authority (:mod:`dirigent.mesh.ca`) signed for one service;
:func:`peer_identity` reads the caller's or callee's SPIFFE ID from the
certificate it presented in a handshake. Both live apart from the CA so that
a listener, which only loads and reads certificates through :mod:`ssl`, never
imports ``cryptography``: signing is needed once per identity, not per
request, and the package costs a worker about 12 MB of memory.

This module must never import ``cryptography``, sign, or read a clock.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """A service's certificate and key (PEM), and the trust bundle to check peers against."""

    spiffe_id: str
    certificate_pem: bytes
    key_pem: bytes
    trust_pem: bytes
    #: seconds since the epoch
    not_before: float
    not_after: float


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The SPIFFE ID in the verified certificate a peer presented; None without one."""
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    if not certificate:
        return None
    names: tuple[tuple[str, str], ...] = certificate.get("subjectAltName", ())  # type: ignore[assignment]  # typeshed types the SAN loosely
    for kind, value in names:
        if kind == "URI" and value.startswith("spiffe://"):
            return value
    return None
