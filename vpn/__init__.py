"""VPN: WireGuard remote access with an MFA gate, per-user access lists and vendor maintenance windows."""
