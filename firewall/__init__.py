"""Firewall: nftables zones, default-deny policy, NAT, live block/allow/quarantine sets, DHCP/DNS, inventory."""
