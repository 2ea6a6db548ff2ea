"""Which peers may say who the client is (TRUSTED_PROXIES), so the per-address limit counts
children, not the reverse proxy in front of the gateway.

uvicorn applies it (`bot/app.py:main`): for a request from a trusted peer, the client is the
right-most address in X-Forwarded-For that is not itself trusted, i.e. the last one a trusted
proxy wrote; what the client wrote to the left of it is never believed. A request from any other
peer keeps the peer's address, whatever headers it sends.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network

# uvicorn's own default (FORWARDED_ALLOW_IPS): a proxy on the machine itself.
DEFAULT = "127.0.0.1,::1"


def parse(spec: str) -> tuple[Network, ...]:
    """The addresses and networks of "10.0.0.2, 10.1.0.0/16, ::1". Anything else (a host name,
    "*") is a ValueError at start-up: a typo must not quietly trust nobody, or everybody."""
    return tuple(ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip())


def is_trusted(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)
