"""The daemon runs the web UI: HTTPS on the LAN address, plain HTTP only redirecting, nothing for guests,
and a web UI that dies is started again by itself."""

from __future__ import annotations

import os
import re
import signal

import pytest

from lab.box import Box, privileges, runs_as, without_capabilities
from lab.waiting import wait_for

pytestmark = pytest.mark.integration


def curl(box: Box, host: str, url: str) -> str:
    res = box.lab.run(host, ["curl", "-sk", "-o", "/dev/null", "-m", "5", "-w", "%{http_code} %{redirect_url}", url],
                      check=False, timeout=15)  # fmt: skip
    return res.stdout


def listener_pid(box: Box, port: int) -> int | None:
    """The web server process the daemon started (its direct child), not one of gunicorn's workers."""
    return box.listener(port)


def children(pid: int) -> list[int]:
    """The processes `pid` forked (gunicorn's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except FileNotFoundError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_web_ui_served_redirected_confined_and_restarted(box: Box) -> None:
    box.start_daemon()
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    http = curl(box, "reception", "http://192.168.10.1/")
    assert re.match(r"30[1278] https://192\.168\.10\.1", http), http
    assert curl(box, "phone", "https://192.168.20.1/").startswith("000")  # guests: no web UI at all
    assert curl(box, "attacker", "https://203.0.113.2/").startswith("000")

    first = listener_pid(box, 443)
    assert first is not None
    os.kill(first, signal.SIGKILL)  # the web UI crashes
    second = wait_for(lambda: (p := listener_pid(box, 443)) and p != first and p, 60)
    assert second, "the daemon did not start the web UI again"
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)


def test_web_ui_runs_without_capabilities_on_sockets_the_daemon_bound(box: Box) -> None:
    """The daemon binds 443 and 80 and passes them in; the web UI (gunicorn and its workers) has no capability
    and cannot gain one, and still answers HTTPS and redirects plain HTTP (appliance.unprivileged)."""
    box.start_daemon()
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    assert re.match(r"30[1278] https://192\.168\.10\.1", curl(box, "reception", "http://192.168.10.1/"))
    web = listener_pid(box, 443)
    assert web is not None
    workers = wait_for(lambda: children(web), 30)
    assert workers, "gunicorn has no worker"
    for pid in (web, *workers):
        assert without_capabilities(pid), (pid, privileges(pid))
        assert runs_as(pid, "mamori-web"), (pid, privileges(pid))  # appliance.child_access
    cmdline = open(f"/proc/{web}/cmdline").read().split("\0")
    assert "--fd" in cmdline and "--http-fd" in cmdline and "--bind" not in cmdline, cmdline
    # The daemon keeps its capabilities (it is the one that acts), and holds the listening sockets too.
    daemon = int((box.state_dir / "run" / "mamori.pid").read_text())
    assert int(privileges(daemon)["CapEff"], 16) != 0
    ss = box.lab.run("box", ["ss", "-Hltnp", "sport = :443 or sport = :80"]).stdout
    assert f"pid={daemon}," in ss and f"pid={web}," in ss, ss


def test_reload_restarts_the_web_ui(box: Box) -> None:
    """SIGHUP (what `mamori backup restore` and the web UI's restore send) restarts the web UI process too:
    after a restore it must read the restored certificate and cookie key, which it reads only at start."""
    box.start_daemon()
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    first = listener_pid(box, 443)
    assert first is not None
    os.kill(int((box.state_dir / "run" / "mamori.pid").read_text()), signal.SIGHUP)
    second = wait_for(lambda: (p := listener_pid(box, 443)) and p != first and p, 60)
    assert second, "a reload did not restart the web UI"
    assert not os.path.exists(f"/proc/{first}"), "the old web UI process is still there"
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    assert box.daemon is not None and box.daemon.poll() is None


class _Browser:
    """A signed-in person at 受付PC: urllib in the reception namespace (this thread switched into it), with the
    session cookie and the CSRF token of each form, as a browser would send them."""

    CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

    def __init__(self, base: str) -> None:
        import http.cookiejar
        import ssl
        import urllib.request

        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE

        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):  # a 302 is answered, not followed
                return None

        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            _NoRedirect(),
        )

    def request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        import urllib.error
        import urllib.parse
        import urllib.request

        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=data), timeout=30) as r:
                return r.status, r.headers.get("Location", ""), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", ""), exc.read().decode()

    def post(self, path: str, form: dict[str, str], page: str | None = None) -> tuple[int, str, str]:
        body = self.request(page or path)[2]
        token = self.CSRF.search(body)
        assert token, f"no CSRF token on {page or path}"
        return self.request(path, {"csrf_token": token.group(1), **form})


# The pages a signed-in administrator reaches from the menu (GET, no argument).
PAGES = ("/", "/accounts/", "/alerts/", "/audit/", "/devices/", "/firewall/", "/me", "/reports/",
         "/reports/checklist.html", "/settings/", "/settings/backup", "/settings/certificate", "/settings/edit",
         "/settings/fleet/", "/settings/ids", "/settings/mgmt/", "/settings/ssh", "/settings/status",
         "/settings/time", "/update/", "/vpn/", "/devices/export.csv", "/reports/ledger.csv",
         "/update/progress")  # fmt: skip


def test_a_change_from_the_web_ui_is_applied_by_the_daemon_through_its_action_socket(box: Box) -> None:
    """The web UI process asks the daemon for `config.apply` over the action socket (appliance.actions): a rule
    added on the firewall page lands in the kernel, as the signed-in account; the socket is root's."""
    import pyotp
    from pyroute2.netns import popns, pushns

    from appliance.paths import Paths
    from appliance.revisions import RevisionStore
    from appliance.storage import Database
    from webui.accounts import AccountStore

    db = Database(Paths(box.config, box.state_dir).db)
    secret = pyotp.random_base32()
    AccountStore(db).create("inchou", "Kanja-no-Mamori-2026", "admin", totp_secret=secret)
    box.start_daemon()
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    web = listener_pid(box, 443)
    assert web is not None
    sock = box.state_dir / "run" / "actions.sock"
    assert f"--actions\0{sock}\0" in open(f"/proc/{web}/cmdline").read()
    before = box.nft_json().count("192.168.10.20")
    live = RevisionStore(db).live()
    assert live is not None

    pushns(box.lab.ns("reception"))
    try:
        browser = _Browser("https://192.168.10.1")
        status, where, _ = browser.post("/login", {"username": "inchou", "password": "Kanja-no-Mamori-2026"})
        assert (status, where.endswith("/login/totp")) == (302, True), status
        status, _, _ = browser.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
        assert status == 302
        rule = {"src": "受付PC", "dst": "PACS", "service": "DICOM", "comment": "画像の確認"}
        status, review, _ = browser.post("/firewall/rules", rule, page="/firewall/")
        assert status == 302 and "/settings/review/" in review, (status, review)
        review_path = review.split("192.168.10.1", 1)[-1]
        status, where, body = browser.post(review_path, {"decision": "apply"})
        assert status == 302 and where.endswith("/settings/status"), (status, body[-500:])
        # Every page of the menu, as the daemon runs the web UI: as mamori-web, over files the daemon made
        # under its unit's umask (lab/box.py). A read the account may not make is a 500 here.
        failed = {p: s for p in PAGES if (s := browser.request(p)[0]) != 200}
        assert failed == {}, (failed, (box.state_dir / "run" / "webui.log").read_text()[-3000:])
    finally:
        popns()
    new = RevisionStore(db).live()
    assert new is not None and new.id > live.id and (new.author, new.source) == ("inchou", "web")
    assert box.nft_json().count("192.168.10.20") > before  # the new rule's source is in the kernel's ruleset

    # Only root (and the web UI's group) may open the socket; the daemon checks each peer too (SO_PEERCRED,
    # tests/unit/test_actions.py).
    st = sock.stat()
    assert st.st_uid == 0 and st.st_mode & 0o007 == 0, oct(st.st_mode)
