"""Who the client is, for per-address limits: the peer, or what trusted proxies say it is.

`X-Forwarded-For` is believed only when the direct peer is a trusted proxy
(STOCKGATE_TRUSTED_PROXIES). Each proxy appends the address it received the request from, so
the list is read from the right: trusted proxies are skipped, and the first address that is
not one is the client. Anything left of it was written by the client and may be forged.
Several X-Forwarded-For headers count as one list, joined in order (RFC 9110 5.3).
An IPv6 client is counted by its /64: one subscriber gets a whole /64 and could otherwise
rotate through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

Network = IPv4Network | IPv6Network
UNKNOWN = "unknown"


class ClientAddresses:
    def __init__(self, trusted: Iterable[Network]) -> None:
        self._trusted = tuple(trusted)
        # Peers repeat (a few proxies, or the same buyers): parse each once.
        self._peer_is_trusted = lru_cache(maxsize=4096)(self._is_trusted_text)

    def of(self, peer: str | None, forwarded: Iterable[str] = ()) -> str:
        """The client's address as a limit key; `forwarded`: the X-Forwarded-For values."""
        if not peer:
            return UNKNOWN
        if not self._trusted or not self._peer_is_trusted(peer):
            return _key(peer)
        nearest = peer  # the last hop known to be trustworthy
        for hop in reversed([h.strip() for value in forwarded for h in value.split(",")]):
            if not hop:
                continue
            address = _parse(hop)
            if address is None:
                # Garbage where a trusted proxy should have written an address: count the
                # proxy that passed it on, never the text (a client could vary it).
                return _key(nearest)
            if not self._is_trusted(address):
                return _key(str(address))
            nearest = str(address)
        return _key(nearest)  # every hop is a trusted proxy: the request started among them

    def trusts(self, peer: str | None) -> bool:
        """Is the direct peer one of our proxies (whose forwarded headers are believed)?"""
        return bool(peer and self._trusted and self._peer_is_trusted(peer))

    def _is_trusted_text(self, text: str) -> bool:
        address = _parse(text)
        return address is not None and self._is_trusted(address)

    def _is_trusted(self, address: IPv4Address | IPv6Address) -> bool:
        return any(address in network for network in self._trusted)


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:5123"
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def _key(text: str) -> str:
    address = _parse(text)
    if address is None:
        return text
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return str(address)
