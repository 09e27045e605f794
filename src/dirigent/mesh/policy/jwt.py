"""JSON Web Token validation for the ingress gateway: signature, issuer, audience, time.

As Envoy's ``jwt_authn`` filter (Istio's RequestAuthentication) checks a
bearer token: the signature must verify with a key of the issuer's JWKS
(RS256 with an RSA key, ES256 with a P-256 key; the key's type must fit the
token's ``alg``, so an RSA public key can never be used as an HMAC secret and
``none`` is never accepted); ``iss`` must be the issuer; ``aud`` must name one
of the audiences when any are configured; ``exp`` and ``nbf``, when present,
must hold at ``now`` within a small leeway for clock skew.

A rejection is data (:class:`Rejected` with the reason), never an exception.
This module must never fetch keys or read a clock: the shell hands in the
keys it loaded and the time. It imports ``cryptography`` only when a JWKS is
read or a token verified, never at import: the manifest's model imports
:class:`JwtRule`, and a mesh worker without a gateway should not carry the
package.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

#: seconds of clock skew tolerated on ``exp`` and ``nbf`` (Envoy's default)
DEFAULT_LEEWAY = 60
PublicKey: TypeAlias = "rsa.RSAPublicKey | ec.EllipticCurvePublicKey"


@dataclass(frozen=True, slots=True)
class JwtRule:
    """Who may issue tokens for the gateway and for whom they must be meant."""

    issuer: str
    audiences: tuple[str, ...] = ()
    leeway: float = DEFAULT_LEEWAY


@dataclass(frozen=True, slots=True)
class Verified:
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


def read_jwks(document: Mapping[str, Any]) -> dict[str, PublicKey]:
    """The usable keys of a JWKS document by ``kid``; keys of other types are skipped.

    A key without a ``kid`` is filed under its position (``#0``, ``#1``...),
    and is tried for tokens that name no key.
    """
    keys: dict[str, PublicKey] = {}
    for index, jwk in enumerate(document.get("keys", ())):
        if not isinstance(jwk, Mapping) or jwk.get("use", "sig") != "sig":
            continue
        key = _public_key(jwk)
        if key is not None:
            kid = jwk.get("kid")
            keys[kid if isinstance(kid, str) else f"#{index}"] = key
    return keys


def _public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415 - see _signature_ok

    try:
        if jwk.get("kty") == "RSA":
            n, e = _integer(jwk["n"]), _integer(jwk["e"])
            return rsa.RSAPublicNumbers(e, n).public_key()
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            x, y = _integer(jwk["x"]), _integer(jwk["y"])
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, ValueError, TypeError):
        return None
    return None


def verify(
    token: str, rule: JwtRule, keys: Mapping[str, PublicKey], now: float
) -> Verified | Rejected:
    parts = token.split(".")
    if len(parts) != 3:
        return Rejected("Jwt is not in the form of Header.Payload.Signature")
    try:
        header = json.loads(_unbase64(parts[0]))
        claims = json.loads(_unbase64(parts[1]))
        signature = _unbase64(parts[2])
    except (ValueError, binascii.Error):
        return Rejected("Jwt is not valid base64url-encoded JSON")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return Rejected("Jwt header or payload is not a JSON object")
    alg = header.get("alg")
    if alg not in ("RS256", "ES256"):
        return Rejected(f"Jwt algorithm {alg!r} is not supported")
    kid = header.get("kid")
    candidates = (
        [keys[kid]] if isinstance(kid, str) and kid in keys
        else [] if isinstance(kid, str)
        else [k for name, k in keys.items() if name.startswith("#")] or list(keys.values())
    )  # fmt: skip
    signed = (parts[0] + "." + parts[1]).encode("ascii")
    if not any(_signature_ok(alg, key, signed, signature) for key in candidates):
        return Rejected("Jwt verification fails")
    if claims.get("iss") != rule.issuer:
        return Rejected("Jwt issuer is not configured")
    if rule.audiences and not _audience_ok(claims.get("aud"), rule.audiences):
        return Rejected("Audiences in Jwt are not allowed")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and (not _number(exp) or now > exp + rule.leeway):
        return Rejected("Jwt is expired")
    if nbf is not None and (not _number(nbf) or now < nbf - rule.leeway):
        return Rejected("Jwt not yet valid")
    return Verified(claims)


def _signature_ok(alg: str, key: PublicKey, signed: bytes, signature: bytes) -> bool:
    # cryptography is imported here and in _public_key, not at the top: the
    # manifest's model (JwtRule) and every listener import this module, and
    # only a gateway that checks tokens should pay the package's memory.
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: PLC0415
        encode_dss_signature,
    )

    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1) or len(signature) != 64:
                return False
            # JWS carries r || s raw (RFC 7518 section 3.4); cryptography wants DER.
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


def _audience_ok(aud: object, audiences: tuple[str, ...]) -> bool:
    if isinstance(aud, str):
        return aud in audiences
    if isinstance(aud, list):
        return any(isinstance(a, str) and a in audiences for a in aud)
    return False


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unbase64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _integer(text: object) -> int:
    if not isinstance(text, str):
        raise TypeError("expected a base64url string")
    return int.from_bytes(_unbase64(text), "big")
