"""Webhook signatures checked by a verifier written from the Standard Webhooks text (not the
signer), and the SSRF policy on the address forms that reach inside a network."""

from __future__ import annotations

import ipaddress

import pytest

from stocksync.webhooks.signing import headers, new_secret
from stocksync.webhooks.targets import TargetPolicy, TargetRefused
from tests.support.webhook_receiver import verify


def test_signature_verifies_independently_and_binds_id_timestamp_and_body() -> None:
    secret = new_secret()
    body = b'{"type":"stock.out","data":{"sku":"A","available":0}}'
    signed = headers(secret, "msg_1", 1_700_000_000, body)
    assert secret.startswith("whsec_")
    assert signed["webhook-signature"].startswith("v1,")
    assert verify(secret, signed, body)
    assert not verify(secret, signed, body + b" ")
    assert not verify(secret, {**signed, "webhook-id": "msg_2"}, body)
    assert not verify(secret, {**signed, "webhook-timestamp": "1700000001"}, body)
    assert not verify(new_secret(), signed, body)


def test_known_vector_from_the_specification_examples() -> None:
    # Computed once from the spec's recipe with Python's hmac, not by stocksync.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signed = headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signed["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def policy(**kw: object) -> TargetPolicy:
    options: dict[str, object] = {
        "allow_private": False,
        "allowed_cidrs": [],
        "max_url_length": 200,
    }
    options.update(kw)
    return TargetPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://192.168.0.10/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://localhost/hook",  # a name that resolves to loopback
    ],
)
async def test_internal_targets_are_refused_by_default(url: str) -> None:
    with pytest.raises(TargetRefused):
        await policy().check(url)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/", "x" * 300]
)
async def test_only_plain_http_urls_within_the_length_bound(url: str) -> None:
    with pytest.raises(TargetRefused):
        await policy().check(url)


def test_every_resolved_address_must_be_public() -> None:
    public = ipaddress.ip_address("93.184.216.34")
    private = ipaddress.ip_address("10.0.0.5")
    policy().check_addresses("shop.example", [public])
    with pytest.raises(TargetRefused):
        policy().check_addresses("shop.example", [public, private])


async def test_operator_may_allow_private_targets_or_a_network() -> None:
    await policy(allow_private=True).check("http://127.0.0.1:9/hook")
    await policy(allowed_cidrs=["10.20.0.0/16"]).check("http://10.20.1.1/hook")
    with pytest.raises(TargetRefused):
        await policy(allowed_cidrs=["10.20.0.0/16"]).check("http://10.21.1.1/hook")
