"""The internal CA: what it puts in an identity, and when an identity is renewed."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from dirigent.mesh.ca import CertificateAuthority
from dirigent.mesh.policy import rotation

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("shop", now=NOW)


def test_an_identity_names_its_service_by_spiffe_id_in_the_san_only(
    ca: CertificateAuthority,
) -> None:
    identity = ca.issue("payments", now=NOW)
    cert = x509.load_pem_x509_certificate(identity.certificate_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://shop/service/payments"
    ]
    assert san.get_values_for_type(x509.DNSName) == []
    assert identity.spiffe_id == "spiffe://shop/service/payments"


def test_an_identity_serves_both_ends_of_mutual_tls_and_signs_nothing(
    ca: CertificateAuthority,
) -> None:
    cert = x509.load_pem_x509_certificate(ca.issue("payments", now=NOW).certificate_pem)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_an_identity_is_signed_by_the_ca_and_lives_as_long_as_asked(
    ca: CertificateAuthority,
) -> None:
    identity = ca.issue("payments", now=NOW, ttl=dt.timedelta(hours=1))
    cert = x509.load_pem_x509_certificate(identity.certificate_pem)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=1)
    # back-dated a little for peers whose clocks lag
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=1)
    assert identity.not_after - identity.not_before == 3660


def test_each_identity_has_its_own_key(ca: CertificateAuthority) -> None:
    assert ca.issue("payments", now=NOW).key_pem != ca.issue("payments", now=NOW).key_pem


def test_renewal_is_due_half_way_through_the_lifetime() -> None:
    assert rotation.renew_at(1000.0, 2000.0) == 1500.0
    assert rotation.seconds_until_renewal(1000.0, 2000.0, now=1200.0) == 300.0


def test_an_overdue_renewal_is_due_at_once() -> None:
    assert rotation.seconds_until_renewal(1000.0, 2000.0, now=5000.0) == 0.0


def test_a_renewal_fraction_outside_zero_and_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        rotation.renew_at(0.0, 1.0, fraction=1.0)
