"""Verify AWS Signature Version 4 on an incoming request: a pure function.

The caller hands over the request exactly as it arrived (method, raw path,
raw query, headers, body), a way to look a secret up by access key id, and the
current time. The answer is a :class:`Verified` naming the access key, or a
:class:`Rejected` carrying AWS's error code and message. Only the header form
(``Authorization: AWS4-HMAC-SHA256 ...``) is accepted; boto3, the AWS CLI and
every SDK send it for JSON-protocol services.

This module must never do I/O, read a clock or keep state: time comes in as an
argument, secrets through the lookup, so it is tested against botocore's own
signer with fixed times. Deriving a signing key costs four HMACs and changes
only once a day per key, so :func:`verify` takes the derivation as an argument:
the server passes a memoised one (see :func:`memoised_signing_key`) and owns its
memory, while the default derives afresh.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
#: AWS refuses a signature dated more than 15 minutes away from its own clock
MAX_SKEW_SECONDS = 15 * 60
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Verified:
    access_key_id: str
    region: str
    service: str


@dataclass(frozen=True, slots=True)
class Rejected:
    #: AWS's ``__type``: MissingAuthenticationTokenException, IncompleteSignatureException,
    #: InvalidSignatureException or UnrecognizedClientException
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    #: the path as sent, still percent-encoded
    raw_path: str
    #: the query string as sent, without ``?``
    raw_query: str
    #: every header as (name, value); a repeated name appears more than once
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _hmac(key: bytes, text: str) -> bytes:
    # Not hmac.digest: that one releases the GIL around every call, and on a
    # busy server getting it back can take a whole switch interval (5 ms).
    # hmac.new keeps it for inputs this small.
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


#: how a signing key is derived from (secret, date, region, service)
SigningKey = Callable[[str, str, str, str], bytes]


def memoised_signing_key(size: int = 256) -> SigningKey:
    """A :func:`signing_key` that remembers the last ``size`` derivations.

    Bounded because region and service come from the caller's credential scope;
    they are only read once the access key is known and the date is within the
    allowed skew, but a known key could still vary them without end.
    """
    return functools.lru_cache(maxsize=size)(signing_key)


def _parse_amz_date(text: str | None) -> datetime | None:
    # The fixed ``YYYYMMDDTHHMMSSZ`` layout, read by slicing: strptime costs about
    # as much as the rest of a verification together.
    if text is None or len(text) != 16 or text[8] != "T" or text[15] != "Z":
        return None
    digits = text[:8] + text[9:15]
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _canonical_path(raw_path: str) -> str:
    # Non-S3 services sign the path as sent, percent-encoded once more (so "%20"
    # is signed as "%2520"); decoding it first would accept a different request.
    return quote(raw_path or "/", safe="/~")


def _canonical_query(raw_query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append(
            (
                quote(unquote(key.replace("+", " ")), safe="-_.~"),
                quote(unquote(value.replace("+", " ")), safe="-_.~"),
            )
        )
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_values(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {name: ",".join(values) for name, values in merged.items()}


def canonical_request(request: SignedRequest, signed_headers: list[str]) -> str:
    return _canonical_request(request, _header_values(request.headers), signed_headers)


def _canonical_request(
    request: SignedRequest, values: Mapping[str, str], signed_headers: list[str]
) -> str:
    canonical_headers = "".join(f"{name}:{values.get(name, '')}\n" for name in signed_headers)
    return "\n".join(
        (
            request.method.upper(),
            _canonical_path(request.raw_path),
            _canonical_query(request.raw_query),
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(request.body).hexdigest(),
        )
    )


def _parse_authorization(value: str) -> dict[str, str] | None:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, field_value = item.strip().partition("=")
        if sep:
            fields[key] = field_value
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def verify(
    request: SignedRequest,
    secret_for: Callable[[str], str | None],
    now: datetime,
    derive: SigningKey = signing_key,
) -> Verified | Rejected:
    """Check ``request``'s signature; ``secret_for`` answers ``None`` for unknown keys."""
    headers = _header_values(request.headers)
    authorization = headers.get("authorization")
    if authorization is None:
        return Rejected("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = _parse_authorization(authorization)
    if fields is None:
        return Rejected(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            f"parameters and the {ALGORITHM} algorithm.",
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return Rejected("IncompleteSignatureException", "Credential scope is malformed.")
    key_id, date, region, service, _ = scope
    signed_headers = fields["SignedHeaders"].split(";")
    if "host" not in signed_headers or signed_headers != sorted(signed_headers):
        return Rejected(
            "IncompleteSignatureException", "SignedHeaders must be sorted and include host."
        )
    amz_date = headers.get("x-amz-date")
    signed_at = _parse_amz_date(amz_date)
    if signed_at is None:
        return Rejected(
            "IncompleteSignatureException", "Authorization header requires a valid X-Amz-Date."
        )
    if amz_date is None or not amz_date.startswith(date):
        return Rejected(
            "InvalidSignatureException", "Credential should be scoped to the request's date."
        )
    skew = (now - signed_at).total_seconds()
    if abs(skew) > MAX_SKEW_SECONDS:
        # AWS's wording, so tools that match on it keep working.
        limit = now.strftime(_AMZ_DATE)
        relation = "earlier" if skew > 0 else "later"
        return Rejected(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now {relation} than {limit} "
            f"({limit} {'-' if skew > 0 else '+'} 15 min.)",
        )
    secret = secret_for(key_id)
    if secret is None:
        return Rejected(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    expected = _signature(
        request,
        headers,
        signed_headers,
        key=derive(secret, date, region, service),
        amz_date=amz_date,
        region=region,
        service=service,
    )
    # As bytes: compare_digest refuses str with non-ASCII characters, which a
    # forged header may carry, and that must be a rejection, not a crash.
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode("utf-8")):
        return Rejected(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return Verified(key_id, region, service)


def _signature(
    request: SignedRequest,
    values: Mapping[str, str],
    signed_headers: list[str],
    *,
    key: bytes,
    amz_date: str,
    region: str,
    service: str,
) -> str:
    canonical = _canonical_request(request, values, signed_headers)
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            f"{amz_date[:8]}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    return _hmac(key, string_to_sign).hex()


def sign(
    request: SignedRequest,
    access_key_id: str,
    secret: str,
    *,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """The ``X-Amz-Date`` and ``Authorization`` headers that sign ``request``.

    ``request.headers`` must already hold every header to be signed, ``host``
    included; the clients of Dirigent's own SDK use this, the server only verifies.
    """
    amz_date = now.astimezone(UTC).strftime(_AMZ_DATE)
    dated = SignedRequest(
        request.method,
        request.raw_path,
        request.raw_query,
        (*request.headers, ("x-amz-date", amz_date)),
        request.body,
    )
    values = _header_values(dated.headers)
    signed_headers = sorted(values)
    signature = _signature(
        dated,
        values,
        signed_headers,
        key=signing_key(secret, amz_date[:8], region, service),
        amz_date=amz_date,
        region=region,
        service=service,
    )
    credential = f"{access_key_id}/{amz_date[:8]}/{region}/{service}/aws4_request"
    return {
        "X-Amz-Date": amz_date,
        "Authorization": f"{ALGORITHM} Credential={credential}, "
        f"SignedHeaders={';'.join(signed_headers)}, Signature={signature}",
    }


def header_pairs(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(headers.items())
