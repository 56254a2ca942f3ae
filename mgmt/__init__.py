"""The management link: a WireGuard tunnel the box dials out to its support vendor's hub (issue 14).

The box initiates (PersistentKeepalive), so it works behind the clinic router's NAT and opens no port on
wan. On the link the hub may reach the box itself only (the web UI, maintenance SSH while it is on, the
metrics port named on the link's address), never a clinic zone: firewall/render.py drops every packet
forwarded from or to the link before any other rule, whatever the config says. The clinic's administrator
enrols the link from a code the vendor gives (mgmt.code), sees whether it is up and what the hub did
(mgmt.status), and cuts it with one button or `mamori mgmt cut`.

Later users of the same tunnel (fleet config changes, syslog, a relay for doctors' WireGuard packets)
ride on this interface; none of them is built here.
"""
