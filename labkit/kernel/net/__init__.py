"""Container networking, one module per kernel object: :mod:`.bridge` (a Linux
bridge, the host's addresses and routes, forwarding), :mod:`.veth` (a pair per
container endpoint) and :mod:`.nat` (labkit's own nftables table)."""
