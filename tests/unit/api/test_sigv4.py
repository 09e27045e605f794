"""SigV4 verification against requests signed by botocore's own signer."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dirigent.sigv4 import (
    Rejected,
    SignedRequest,
    Verified,
    memoised_signing_key,
    signing_key,
    verify,
)

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SIGNED_AT = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def signed(
    body: bytes = b'{"maxResults": 5}',
    url: str = "http://127.0.0.1:8080/",
    secret: str = SECRET,
    at: datetime = SIGNED_AT,
) -> SignedRequest:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    # botocore reads the signing time from datetime.datetime.utcnow(); pin it.
    with mock.patch("botocore.auth.datetime.datetime") as clock:
        clock.utcnow.return_value = at.replace(tzinfo=None)
        clock.now.return_value = at.replace(tzinfo=None)
        SigV4Auth(Credentials(KEY, secret), "states", "us-east-1").add_auth(request)
    prepared = request.prepare()
    path, _, query = prepared.url.split("127.0.0.1:8080", 1)[1].partition("?")
    headers = [(k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    headers.append(("Host", "127.0.0.1:8080"))
    return SignedRequest("POST", path, query, tuple(headers), prepared.body or b"")


def secrets(key: str) -> str | None:
    return SECRET if key == KEY else None


def test_a_request_signed_by_botocore_is_verified() -> None:
    assert verify(signed(), secrets, SIGNED_AT + timedelta(seconds=3)) == Verified(
        KEY, "us-east-1", "states"
    )


def test_a_query_string_and_odd_path_are_part_of_what_is_verified() -> None:
    request = signed(url="http://127.0.0.1:8080/a%20b/c?z=1&a=x%2Fy&a=b")
    assert isinstance(verify(request, secrets, SIGNED_AT), Verified)


def test_a_changed_body_is_a_forged_signature() -> None:
    request = signed()
    forged = SignedRequest(
        request.method, request.raw_path, request.raw_query, request.headers, b'{"maxResults": 6}'
    )
    verdict = verify(forged, secrets, SIGNED_AT)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "InvalidSignatureException"


def test_a_request_signed_with_another_secret_is_rejected() -> None:
    verdict = verify(signed(secret="not-the-secret"), secrets, SIGNED_AT)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "InvalidSignatureException"


def test_a_signature_older_than_fifteen_minutes_has_expired() -> None:
    verdict = verify(signed(), secrets, SIGNED_AT + timedelta(minutes=15, seconds=1))
    assert isinstance(verdict, Rejected)
    assert verdict.code == "InvalidSignatureException"
    assert verdict.message.startswith("Signature expired: 20261129T120000Z is now earlier than")


def test_a_signature_from_the_future_beyond_the_skew_is_rejected() -> None:
    verdict = verify(signed(), secrets, SIGNED_AT - timedelta(minutes=16))
    assert isinstance(verdict, Rejected)
    assert "later" in verdict.message


def test_fourteen_minutes_of_skew_is_tolerated() -> None:
    assert isinstance(verify(signed(), secrets, SIGNED_AT + timedelta(minutes=14)), Verified)


def test_an_unknown_access_key_is_an_unrecognized_client() -> None:
    verdict = verify(signed(), lambda key: None, SIGNED_AT)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "UnrecognizedClientException"


def test_no_authorization_header_is_a_missing_token() -> None:
    request = signed()
    bare = SignedRequest(
        "POST",
        "/",
        "",
        tuple((k, v) for k, v in request.headers if k.lower() != "authorization"),
        request.body,
    )
    verdict = verify(bare, secrets, SIGNED_AT)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "MissingAuthenticationTokenException"


def test_a_garbled_authorization_header_is_an_incomplete_signature() -> None:
    request = SignedRequest(
        "POST", "/", "", (("Authorization", "AWS4-HMAC-SHA256 nonsense"), ("Host", "h")), b""
    )
    verdict = verify(request, secrets, SIGNED_AT)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "IncompleteSignatureException"


def test_a_request_signed_by_sign_verifies_and_matches_botocore() -> None:
    from datetime import UTC, datetime

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from dirigent.sigv4 import sign

    now = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)
    body = b'{"stateMachineArn": "x"}'
    headers = (
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-target", "AWSStepFunctions.StartExecution"),
    )
    request = SignedRequest("POST", "/", "", headers, body)
    signed = sign(request, "AKIDEXAMPLE", "secret", region="us-east-1", service="states", now=now)
    verified = verify(
        SignedRequest("POST", "/", "", (*headers, *signed.items()), body),
        {"AKIDEXAMPLE": "secret"}.get,
        now,
    )
    assert verified == Verified("AKIDEXAMPLE", "us-east-1", "states")
    # botocore signs at its own clock: sign again at the moment it chose, then compare.
    reference = AWSRequest("POST", "http://127.0.0.1:8080/", data=body, headers=dict(headers))
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "states", "us-east-1").add_auth(reference)
    moment = datetime.strptime(reference.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=UTC
    )
    ours = sign(request, "AKIDEXAMPLE", "secret", region="us-east-1", service="states", now=moment)
    assert ours["Authorization"] == reference.headers["Authorization"]


def test_a_signature_with_non_ascii_characters_is_forged_not_a_crash() -> None:
    request = signed()
    headers = tuple(
        (k, v.rsplit("Signature=", 1)[0] + "Signature=é" if k.lower() == "authorization" else v)
        for k, v in request.headers
    )
    forged = SignedRequest("POST", "/", "", headers, request.body)
    verdict = verify(forged, secrets, SIGNED_AT)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "InvalidSignatureException"


def test_a_malformed_amz_date_is_an_incomplete_signature() -> None:
    request = signed()
    for bad in ("20261129T120000", "2026-11-29T12:00:00Z", "20261329T120000Z", "2026112٩T120000Z"):
        headers = tuple((k, bad if k.lower() == "x-amz-date" else v) for k, v in request.headers)
        verdict = verify(SignedRequest("POST", "/", "", headers, request.body), secrets, SIGNED_AT)
        assert isinstance(verdict, Rejected), bad
        assert verdict.code == "IncompleteSignatureException", bad


def test_a_memoised_signing_key_verifies_like_a_fresh_one_and_derives_once() -> None:
    calls: list[tuple[str, str, str, str]] = []

    def counting(secret: str, date: str, region: str, service: str) -> bytes:
        calls.append((secret, date, region, service))
        return signing_key(secret, date, region, service)

    derive = functools.lru_cache(maxsize=4)(counting)
    for _ in range(3):
        assert isinstance(verify(signed(), secrets, SIGNED_AT, derive), Verified)
    assert calls == [(SECRET, "20261129", "us-east-1", "states")]
    memoised = memoised_signing_key()
    assert memoised(SECRET, "20261129", "us-east-1", "states") == signing_key(
        SECRET, "20261129", "us-east-1", "states"
    )


def test_a_memoised_key_for_another_secret_does_not_verify() -> None:
    derive = memoised_signing_key()
    assert isinstance(verify(signed(), secrets, SIGNED_AT, derive), Verified)
    verdict = verify(signed(), lambda key: "another-secret", SIGNED_AT, derive)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "InvalidSignatureException"
