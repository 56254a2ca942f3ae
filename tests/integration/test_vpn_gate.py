"""The MFA gate end to end in the lab, with the real daemon, firewall and tunnels (wireguard-go):
before sign-in a doctor's tunnel reaches only the portal; after password + TOTP it reaches exactly his
access list; logout cuts him, including a TCP connection already open. A vendor is refused outside a
maintenance window, reaches only his target inside it, and is cut when the window ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, Box, in_group, make_box, privileges, runs_as, without_capabilities
from lab.topology import Lab
from lab.waiting import wait_for
from tests import notify_receiver as receiver
from vpn.client import parse_client_conf, up_client
from vpn.wg import WgInterface

pytestmark = pytest.mark.integration

PORTAL = "http://10.99.0.1:8443"
EMR = "192.168.10.10"
RECEPTION = "192.168.10.20"
PASSWORD = "doctor-secret-123"

ECHO = """
import socket, sys, threading
def echo(c):
    while True:
        d = c.recv(1024)
        if not d:
            return
        c.sendall(d)
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait(600)
"""

HOLD = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(b"one"); print(s.recv(16).decode(), flush=True)
sys.stdin.readline()
try:
    s.settimeout(3); s.sendall(b"two"); d = s.recv(16); print("ALIVE" if d else "CLOSED", flush=True)
except OSError as e:
    print("CUT", type(e).__name__, flush=True)
"""

WEBHOOK_PORT = 18080  # on the box namespace's own loopback: the clinic's notification receiver


def notices(box: Box) -> str:
    """What the clinic's webhook received so far (one JSON body per line)."""
    path = box.state_dir.parent / "webhook.jsonl"
    return path.read_text(encoding="utf-8") if path.exists() else ""


HTTP = """
import http.cookiejar, re, sys, urllib.error, urllib.parse, urllib.request
base, action = sys.argv[1], sys.argv[2]
op = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                 urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
page = op.open(base + "/", timeout=5).read().decode()
if action == "get":
    print(200); print(page); sys.exit(0)
data = {"csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1)}
if action == "login":
    data.update(password=sys.argv[3], code=sys.argv[4])
try:
    r = op.open(base + "/" + action, urllib.parse.urlencode(data).encode(), timeout=10)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def portal(lab: Lab, host: str, action: str, *extra: str) -> tuple[int, str]:
    res = lab.run(host, [sys.executable, "-c", HTTP, PORTAL, action, *extra], check=False, timeout=30)
    if res.returncode != 0:
        return 0, res.stderr
    status, _, body = res.stdout.partition("\n")
    return int(status), body


def reachable(lab: Lab, host: str, ip: str, port: int) -> bool:
    return lab.tcp_connect(host, ip, port, timeout=1)


def hold(lab: Lab, host: str, ip: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns(host), sys.executable, "-c", HOLD, ip, str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lab.processes.append(proc)
    assert proc.stdout.readline().strip() == "one"
    return proc


def release(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate("go\n", timeout=20)
    return out


USED_STEPS: set[tuple[str, int]] = set()


def fresh_code(secret: str) -> str:
    """A TOTP code of a step not used yet by this secret (a code is accepted once), waiting if needed."""
    totp = pyotp.TOTP(secret)
    while (secret, int(time.time() // 30)) in USED_STEPS:
        time.sleep(0.5)
    USED_STEPS.add((secret, int(time.time() // 30)))
    return totp.now()


def totp_secret(output: str) -> str:
    return re.search(r"secret=([A-Z2-7]+)", output).group(1)


def onboard(box: Box, host: str, user: str, device: str, ifname: str, tmp: Path) -> str:
    res = box.mamori("vpn", "add", user, device, "--out", str(tmp), "--password-stdin", stdin=PASSWORD + "\n")
    conf = parse_client_conf((tmp / f"{user}-{device}.conf").read_text(encoding="utf-8"))
    up_client(conf, ifname, tmp, netns=box.lab.ns(host))
    return totp_secret(res.stdout)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vpngate")
    lab = Lab(f"vg{os.getpid()}")
    box: Box | None = None
    try:
        lab.up()
        data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        for user in data["vpn"]["users"]:
            user.pop("hours", None)  # access hours are unit-tested; here the test must pass at any time
        data["notifications"]["webhook"] = {
            "url": f"https://127.0.0.1:{WEBHOOK_PORT}/hook",
            "allow_private": True,
        }
        box = make_box(lab, tmp / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        cert, key = receiver.make_cert(tmp / "hook")
        box.entry = receiver.entry(cert)  # the daemon trusts the receiver's test certificate
        lab.spawn("box", receiver.argv(WEBHOOK_PORT, tmp / "webhook.jsonl", cert, key))
        box.mamori("config", "apply", "-m", "VPN の試験")
        lab.spawn("emr", [sys.executable, "-c", ECHO, "443", "22"])
        lab.spawn("reception", [sys.executable, "-c", ECHO, "443"])
        assert wait_for(lambda: "0.0.0.0:443" in lab.run("emr", ["ss", "-Hltn"]).stdout, 5)
        secrets = {
            "yamada": onboard(box, "doctor", "yamada", "home-pc", f"wgd{lab.prefix[2:]}", tmp),
            "vendor-a": onboard(box, "server", "vendor-a", "laptop", f"wgv{lab.prefix[2:]}", tmp),
        }
        box.start_daemon()
        assert wait_for(lambda: portal(lab, "doctor", "get")[0] == 200, 20), (
            "portal not reachable in the tunnel"
        )
        yield lab, box, secrets
    finally:
        try:
            if box is not None:
                box.stop_daemon()
            for host, name, run_dir in (
                ("box", lab.wg_name(), tmp / "state" / "run"),
                ("doctor", f"wgd{lab.prefix[2:]}", tmp),
                ("server", f"wgv{lab.prefix[2:]}", tmp),
            ):
                WgInterface(name, run_dir=run_dir, netns=lab.ns(host)).delete()
        finally:
            lab.down()


def test_portal_and_web_ui_run_without_capabilities(clinic):
    """The portal is a process of its own (vpn.portal_serve) on the socket the daemon bound, without any
    capability, as is the web UI; sign-ins still admit (the daemon does it: vpn.portal_actions, below)."""
    lab, box, _ = clinic
    portal_pid = wait_for(lambda: box.listener(8443), 30)
    assert portal_pid, "no portal process of the daemon listens on 8443"
    assert "vpn.portal_serve" in open(f"/proc/{portal_pid}/cmdline").read()
    assert without_capabilities(portal_pid), privileges(portal_pid)
    assert runs_as(portal_pid, "mamori-portal"), privileges(portal_pid)  # not the web UI's account
    assert not in_group(portal_pid, "mamori-db"), privileges(portal_pid)  # it opens no database
    web = wait_for(lambda: box.listener(443), 60)
    assert web and without_capabilities(web), web and privileges(web)
    assert runs_as(web, "mamori-web"), privileges(web)
    assert portal(lab, "doctor", "get")[0] == 200
    os.kill(portal_pid, signal.SIGKILL)  # the portal crashes: the daemon starts it again, on the same socket
    again = wait_for(lambda: (p := box.listener(8443)) and p != portal_pid and p, 60)
    assert again and without_capabilities(again), "the daemon did not start the portal again"
    assert wait_for(lambda: portal(lab, "doctor", "get")[0] == 200, 30)
    assert wait_for(lambda: box.lab.run("reception", ["curl", "-sk", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}",
                                                      "https://192.168.10.1/"], check=False, timeout=15).stdout == "302", 60)  # fmt: skip


def test_before_signin_only_the_portal(clinic):
    lab, _, _ = clinic
    status, body = portal(lab, "doctor", "get")
    assert status == 200 and "サインインしてください" in body and "山田 院長" in body
    assert not reachable(lab, "doctor", EMR, 443)
    assert not reachable(lab, "doctor", EMR, 22)
    assert not lab.ping("doctor", EMR, wait=1)


def test_wrong_code_is_refused_and_admits_nothing(clinic):
    lab, _, _ = clinic
    status, body = portal(lab, "doctor", "login", PASSWORD, "000000")
    assert status == 401 and "確認コードが違います" in body
    assert not reachable(lab, "doctor", EMR, 443)


def test_signin_admits_exactly_the_access_list_and_logout_cuts(clinic):
    lab, box, secrets = clinic
    status, body = portal(lab, "doctor", "login", PASSWORD, fresh_code(secrets["yamada"]))
    assert status == 200 and "接続中です" in body, body
    assert wait_for(lambda: reachable(lab, "doctor", EMR, 443), 5)
    assert not reachable(lab, "doctor", EMR, 22)  # SSH is not in his access list
    assert not reachable(lab, "doctor", RECEPTION, 443)  # nor is another host
    open_conn = hold(lab, "doctor", EMR, 443)
    status, body = portal(lab, "doctor", "logout")
    assert status == 200 and "接続を終えました" in body
    out = release(open_conn)
    assert "ALIVE" not in out and "CUT" in out, out
    assert not reachable(lab, "doctor", EMR, 443)
    assert portal(lab, "doctor", "get")[0] == 200  # the portal stays reachable to sign in again
    sessions = box.mamori("vpn", "sessions", "yamada").stdout
    assert "logout" in sessions
    assert "vpn.signin" in box.mamori("audit", "list", "--search", "vpn").stdout
    # the daemon's monitor logged the tunnel from `wg show dump`: connect with the doctor's home address
    tunnel_log = lambda: box.mamori("vpn", "sessions", "yamada", "--log").stdout  # noqa: E731
    assert wait_for(lambda: re.search(r"yamada\s+connect\s+198\.51\.100\.20:\d+", tunnel_log()), 15)


def test_vendor_only_inside_window_and_cut_at_its_end(clinic):
    lab, box, secrets = clinic
    status, body = portal(lab, "server", "login", PASSWORD, pyotp.TOTP(secrets["vendor-a"]).now())
    assert status == 403 and "時間枠が承認されていません" in body
    assert not reachable(lab, "server", EMR, 22)
    # The code first (a fresh TOTP step can take up to 30 s), and a window long enough (36 s) that a slow,
    # shared machine still holds the connection open before the window closes.
    code = fresh_code(secrets["vendor-a"])
    box.mamori("vpn", "windows", "--approve", "vendor-a", "--hours", "0.01", "--reason", "電子カルテ更新",
               "--target", "電子カルテ")  # fmt: skip
    status, body = portal(lab, "server", "login", PASSWORD, code)
    assert status == 200 and "接続中です" in body, body
    # The clinic is told at once, through its notification channel, that its vendor is in.
    assert wait_for(lambda: "保守業者が接続しました" in notices(box), 20), notices(box)
    assert "電子カルテ更新" in notices(box)
    assert wait_for(lambda: reachable(lab, "server", EMR, 22), 5)
    assert not reachable(lab, "server", EMR, 443)
    open_conn = hold(lab, "server", EMR, 22)
    assert wait_for(lambda: "window_end" in box.mamori("vpn", "sessions", "vendor-a").stdout, 60)
    out = release(open_conn)
    assert "ALIVE" not in out and "CUT" in out, out
    assert not reachable(lab, "server", EMR, 22)
    report = box.mamori("vpn", "windows", "--report", "1").stdout
    assert "遠隔保守 作業報告 #1" in report and "電子カルテ更新" in report and "window_end" in report


def test_repeated_wrong_codes_lock_and_cut_an_open_session(clinic):
    lab, box, secrets = clinic
    status, body = portal(lab, "doctor", "login", PASSWORD, fresh_code(secrets["yamada"]))
    assert status == 200 and "接続中です" in body, body
    assert wait_for(lambda: reachable(lab, "doctor", EMR, 443), 5)
    open_conn = hold(lab, "doctor", EMR, 443)
    answers = [portal(lab, "doctor", "login", PASSWORD, "000000") for _ in range(5)]
    assert [a[0] for a in answers] == [401] * 5 and "ロック" in answers[-1][1]
    out = release(open_conn)
    assert "ALIVE" not in out and "CUT" in out, out
    assert not reachable(lab, "doctor", EMR, 443)
    assert "locked" in box.mamori("vpn", "sessions", "yamada").stdout
    assert wait_for(lambda: "VPN のログインをロックしました" in notices(box), 20), notices(box)
    # even the right code is refused while locked, until the clinic unlocks him
    assert portal(lab, "doctor", "login", PASSWORD, fresh_code(secrets["yamada"]))[0] == 401
    box.mamori("vpn", "disable", "yamada", "--enable")
    assert "vpn.user.enable" in box.mamori("audit", "list", "--search", "vpn.user").stdout
