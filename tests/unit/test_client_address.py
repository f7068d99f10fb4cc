"""The client address behind trusted proxies: rightmost untrusted hop, forged hops ignored."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from hypothesis import assume, given
from hypothesis import strategies as st

from stockgate.entrypoints.http.client_address import ClientAddresses

TRUSTED = [ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32")]
PROXIES = ClientAddresses(TRUSTED)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_says() -> None:
    direct = ClientAddresses([])
    assert direct.of("198.51.100.7", ["203.0.113.1"]) == "198.51.100.7"
    assert direct.of(None, ["203.0.113.1"]) == "unknown"


def test_an_untrusted_peer_cannot_name_another_client() -> None:
    assert PROXIES.of("198.51.100.7", ["203.0.113.1"]) == "198.51.100.7"


def test_trusted_peer_gives_the_rightmost_untrusted_hop() -> None:
    assert PROXIES.of("10.1.1.1", ["203.0.113.1"]) == "203.0.113.1"
    # The client forged "1.2.3.4"; the proxy appended the address it really saw.
    assert PROXIES.of("10.1.1.1", ["1.2.3.4, 203.0.113.1"]) == "203.0.113.1"
    # Two proxies in a row, the list split over two headers.
    assert PROXIES.of("127.0.0.1", ["1.2.3.4, 203.0.113.1", "10.2.2.2"]) == "203.0.113.1"


def test_all_hops_trusted_or_no_header_counts_the_nearest_proxy() -> None:
    assert PROXIES.of("10.1.1.1", []) == "10.1.1.1"
    assert PROXIES.of("10.1.1.1", ["10.9.9.9"]) == "10.9.9.9"


def test_garbage_from_a_proxy_counts_the_proxy_not_the_text() -> None:
    assert PROXIES.of("10.1.1.1", ["1.2.3.4, not-an-ip"]) == "10.1.1.1"
    assert PROXIES.of("10.1.1.1", ["unknown, 10.3.3.3"]) == "10.3.3.3"


def test_ports_brackets_and_mapped_addresses_are_understood() -> None:
    assert PROXIES.of("10.1.1.1", ["203.0.113.1:5123"]) == "203.0.113.1"
    assert PROXIES.of("10.1.1.1", ["[2001:db8::1]:443"]) == "2001:db8::/64"
    assert PROXIES.of("::ffff:10.1.1.1", ["203.0.113.1"]) == "203.0.113.1"


def test_ipv6_clients_are_counted_by_their_64() -> None:
    one, other = "2001:db8:0:1::1", "2001:db8:0:1:ffff::9"
    assert PROXIES.of(one) == PROXIES.of(other) == "2001:db8:0:1::/64"
    assert PROXIES.of("2001:db8:0:2::1") != PROXIES.of(one)


ipv4 = st.ip_addresses(v=4).map(str)


@given(forged=st.lists(ipv4 | st.text(max_size=12), max_size=4), client=ipv4)
def test_what_the_client_writes_never_changes_who_it_is(forged: list[str], client: str) -> None:
    # A "client" inside the trusted networks is one of our proxies: not this case.
    assume(not any(ip_address(client) in network for network in TRUSTED))
    header = ", ".join([*forged, client]).replace(",,", ",")
    assert PROXIES.of("10.0.0.5", [header]) == client
