"""Maintenance SSH: off by default; when `ssh.enabled`, an sshd run by Mamori listens on the box's lan and
mgmt addresses only and admits only the public keys in the config (no passwords, ever).

Debian's own ssh.service is never used: like chronyd, sshd is started and supervised by `mamori daemon`
with the configuration Mamori renders, so the config (or the web UI) is the only switch.
"""
