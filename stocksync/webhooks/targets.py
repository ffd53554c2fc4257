"""Which URLs a webhook may target: http(s) only, and not inside the network (SSRF).

A subscription is created by an admin key, but its URL makes the workers send requests from
inside the deployment: to ``169.254.169.254`` (cloud metadata), to ``localhost`` (this host's
Redis) or to a private service. So the host is resolved and EVERY address it resolves to must be
public (a name with one public and one private address is refused), unless the operator allows
private targets (``webhook_allow_private``) or lists networks that may be targeted
(``webhook_allowed_cidrs``). The check runs when the subscription is created and again before
every delivery attempt (a name may be re-pointed later); the time between the check and the
connection (DNS rebinding) is the remaining gap, and an egress firewall is the way to close it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import anyio.to_thread

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(ValueError):
    """The URL is not one a webhook may target; the message says why."""


class TargetPolicy:
    def __init__(
        self, *, allow_private: bool, allowed_cidrs: Iterable[str], max_url_length: int
    ) -> None:
        self.allow_private = allow_private
        self.allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in allowed_cidrs
        )
        self.max_url_length = max_url_length

    def split(self, url: str) -> tuple[str, int]:
        """The host and port of ``url``, or TargetRefused when its form is not allowed."""
        if len(url) > self.max_url_length:
            raise TargetRefused(f"the URL is longer than {self.max_url_length} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefused(f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise TargetRefused("only http and https URLs are allowed")
        if not parts.hostname:
            raise TargetRefused("the URL has no host")
        if parts.username or parts.password:
            raise TargetRefused("credentials in the URL are not allowed")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def permitted(self, address: Address) -> bool:
        if self.allow_private or any(address in net for net in self.allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.permitted(address.ipv4_mapped)
        return address.is_global and not address.is_multicast

    def check_addresses(self, host: str, addresses: Sequence[Address]) -> None:
        if not addresses:
            raise TargetRefused(f"{host} resolves to no address")
        refused = [a for a in addresses if not self.permitted(a)]
        if refused:
            raise TargetRefused(
                f"{host} resolves to a private, loopback, link-local, multicast or reserved "
                f"address ({refused[0]}); an operator may allow it (STOCKSYNC_WEBHOOK_ALLOW_"
                "PRIVATE or STOCKSYNC_WEBHOOK_ALLOWED_CIDRS)"
            )

    async def check(self, url: str) -> None:
        """Raise TargetRefused unless ``url`` may be targeted now (resolves its host)."""
        host, port = self.split(url)
        self.check_addresses(host, await resolve(host, port))


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await anyio.to_thread.run_sync(
            lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        )
    except OSError as exc:
        raise TargetRefused(f"{host} does not resolve: {exc}") from None
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )
