"""The default bridge's /etc/resolv.conf: the host's resolvers minus loopback ones (Docker's rule)."""
from labkit.engine.names import FALLBACK, usable_nameservers


def test_loopback_resolvers_are_dropped_and_the_rest_kept_in_order():
    host = ["127.0.0.53", "10.0.0.2", "::1", "127.1.2.3", "fe80::1%eth0", "192.0.2.1"]
    assert usable_nameservers(host) == ["10.0.0.2", "fe80::1%eth0", "192.0.2.1"]


def test_nothing_left_falls_back_to_dockers_public_resolvers():
    assert usable_nameservers(["127.0.0.53", "::1"]) == FALLBACK == ["8.8.8.8", "8.8.4.4"]
    assert usable_nameservers([]) == FALLBACK
    assert usable_nameservers(["not-an-address"]) == FALLBACK
