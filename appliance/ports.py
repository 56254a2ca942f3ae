"""Fixed port numbers that more than one area needs: the service that listens and the firewall that opens it.

Dependency-free on purpose (no imports), so any area can read a number here without importing the module
that runs the service (the firewall renderer must not import the web server). Ports an admin sets are
in the config model (`web.port`, `vpn.listen_port`), not here.
"""

from __future__ import annotations

# Plain HTTP on the web UI's addresses: answers only with a redirect to HTTPS (appliance/webserver.py
# listens, firewall/render.py opens it wherever the web UI is open).
WEB_REDIRECT_PORT = 80
