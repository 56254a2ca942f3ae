"""The fail-closed policy: what the box enforces when it has no valid config to enforce.

Loaded at boot before any interface comes up (image/nftables/fail-closed.nft is this text, checked by a
unit test), and put back by the firewall subsystem when the very first apply of a box fails halfway:
deleting the table there would leave the box forwarding everything. Nothing is forwarded; the box
answers only loopback, DHCP, ICMP from private ranges and the web UI from private addresses, so the
clinic can still reach the setup page. It uses Mamori's own table name, so the full policy replaces it
whole, atomically.
"""

from __future__ import annotations

FAIL_CLOSED_NFT = """\
#!/usr/sbin/nft -f
# Mamori fail-closed boot policy: loaded before any network interface comes up.
# Nothing is forwarded; the box answers only on loopback, DHCP and the web UI from private LAN addresses,
# so the clinic can still reach the setup page. The daemon replaces this table whole, atomically, with
# the full policy (same table name), so there is never a moment without a policy.
# Generated from firewall/failclosed.py (a unit test keeps the two identical).
table inet mamori
delete table inet mamori
table inet mamori {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiif "lo" accept
\t\tct state established,related accept
\t\tct state invalid drop
\t\tudp dport { 67, 68 } accept
\t\tip6 saddr { fe80::/10, fc00::/7 } meta l4proto ipv6-icmp accept
\t\tip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } meta l4proto icmp accept
\t\tip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } tcp dport 443 accept
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t}
\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
"""
