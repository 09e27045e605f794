"""The mesh's internal certificate authority: one per application, one identity per service.

The CA signs each service a short-lived certificate whose only name is its
SPIFFE ID (``spiffe://<app>/service/<name>``) as a URI in the subject
alternative name, as Istio's istiod does for workloads. Listeners present it
for mutual TLS and read the caller's SPIFFE ID from the certificate it
presented (:func:`~dirigent.mesh.identity.peer_identity`); authorization sees
nothing else. Only what signs lives here, with ``cryptography``: listeners
import :mod:`dirigent.mesh.identity`, never this module.

Keys are ECDSA P-256: they make and verify handshakes several times faster
than 2048-bit RSA, which matters when every hop is a handshake.

This module must never open a socket, read a clock or keep a key on disk:
the shell hands in ``now`` and decides where identities live.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dirigent.mesh.identity import Identity
from dirigent.mesh.policy.authz import service_identity

#: how long a service identity lives unless asked otherwise (Istio's default is 24 h)
DEFAULT_IDENTITY_TTL = dt.timedelta(hours=24)
#: how long the CA's own certificate lives
DEFAULT_CA_LIFETIME = dt.timedelta(days=365)
#: certificates start this much before "now", so a peer whose clock lags a
#: little does not reject a certificate issued a moment ago
CLOCK_SKEW = dt.timedelta(minutes=1)


class CertificateAuthority:
    """Signs service identities for one application; its key never leaves the object."""

    def __init__(self, app: str, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate):
        self.app = app
        self._key = key
        self.certificate = certificate

    @classmethod
    def create(
        cls, app: str, *, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_CA_LIFETIME
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dirigent"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"dirigent mesh CA for {app}"),
            ]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(app, key, certificate)

    @property
    def trust_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, service: str, *, now: dt.datetime, ttl: dt.timedelta = DEFAULT_IDENTITY_TTL
    ) -> Identity:
        """A fresh key and certificate for ``service``, valid for ``ttl`` from ``now``."""
        spiffe_id = service_identity(self.app, service)
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = now - CLOCK_SKEW, now + ttl
        certificate = (
            x509.CertificateBuilder()
            # The subject is informative only: peers go by the SAN, as SPIFFE says.
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return Identity(
            spiffe_id=spiffe_id,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            trust_pem=self.trust_pem,
            not_before=not_before.timestamp(),
            not_after=not_after.timestamp(),
        )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
