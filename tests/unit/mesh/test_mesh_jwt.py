"""JWT validation: signatures by RS256 and ES256 keys of a JWKS, issuer, audience, time."""

from __future__ import annotations

import pytest

from dirigent.mesh.policy.jwt import JwtRule, Rejected, Verified, read_jwks, verify

from .tokens import b64, ec_key, jwk, rsa_key, sign

NOW = 1_800_000_000
RULE = JwtRule(issuer="https://auth.example", audiences=("shop",))
CLAIMS = {"iss": "https://auth.example", "aud": "shop", "sub": "alice", "exp": NOW + 300}
RSA, EC = rsa_key(), ec_key()
KEYS = read_jwks({"keys": [jwk(RSA, "r1"), jwk(EC, "e1")]})


@pytest.mark.parametrize(("key", "kid"), [(RSA, "r1"), (EC, "e1")])
def test_a_token_signed_by_a_key_of_the_jwks_is_verified(key: object, kid: str) -> None:
    result = verify(sign(key, CLAIMS, kid), RULE, KEYS, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Verified)
    assert result.claims["sub"] == "alice"


def test_a_token_signed_by_another_key_under_a_known_kid_is_forged() -> None:
    assert verify(sign(rsa_key(), CLAIMS, "r1"), RULE, KEYS, NOW) == Rejected(
        "Jwt verification fails"
    )


def test_an_expired_token_is_rejected_past_the_leeway_only() -> None:
    claims = {**CLAIMS, "exp": NOW - 30}
    assert isinstance(verify(sign(RSA, claims, "r1"), RULE, KEYS, NOW), Verified)
    claims = {**CLAIMS, "exp": NOW - 61}
    assert verify(sign(RSA, claims, "r1"), RULE, KEYS, NOW) == Rejected("Jwt is expired")


def test_a_token_not_yet_valid_is_rejected() -> None:
    claims = {**CLAIMS, "nbf": NOW + 600}
    assert verify(sign(RSA, claims, "r1"), RULE, KEYS, NOW) == Rejected("Jwt not yet valid")


def test_another_issuer_or_audience_is_rejected() -> None:
    other_issuer = sign(RSA, {**CLAIMS, "iss": "https://evil.example"}, "r1")
    other_audience = sign(RSA, {**CLAIMS, "aud": ["billing"]}, "r1")
    assert verify(other_issuer, RULE, KEYS, NOW) == Rejected("Jwt issuer is not configured")
    assert verify(other_audience, RULE, KEYS, NOW) == Rejected("Audiences in Jwt are not allowed")


def test_an_rsa_key_never_verifies_an_es256_token_nor_none() -> None:
    # The token claims ES256 but names the RSA key: the key's type must fit the alg.
    assert isinstance(verify(sign(EC, CLAIMS, "r1"), RULE, KEYS, NOW), Rejected)
    header = b64(b'{"alg":"none","kid":"r1"}')
    unsigned = f"{header}.{b64(b'{}')}."
    assert verify(unsigned, RULE, KEYS, NOW) == Rejected("Jwt algorithm 'none' is not supported")


def test_garbage_is_rejected_as_data() -> None:
    for token in ("", "a.b", "a.b.c", "!!.??.--"):
        assert isinstance(verify(token, RULE, KEYS, NOW), Rejected)


def test_jwks_keys_of_unknown_types_are_skipped() -> None:
    keys = read_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, jwk(EC, "e1")]})
    assert list(keys) == ["e1"]
