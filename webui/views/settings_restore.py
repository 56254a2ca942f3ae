"""設定 → バックアップ → 復元: restore a listed archive from the web UI, with the port assignment a replacement
box of another model needs (issue 20, item 2). 管理者 only (`backup.manage`).

The steps, each a question back to the person until the last:
1. the passphrase (typed, or the one stored on the box); the archive is decrypted and checked
   (`inspect_restore`) — nothing of the box changes;
2. if the backup's config names ports this box does not have: one select per backup port listing this box's
   ports (name, MAC, link up/down), like the interface assignment OPNsense and pfSense ask for on other
   hardware; bad choices come back with the reason beside the field and the choices kept;
3. the mapped config's diff and the final 「復元する」; only then `restore_backup` swaps anything.
After the swap the kernel follows the restored config (ConfigService.reconcile, as the CLI does), the page
says the screen will reload, and once that response has been sent the running daemon gets SIGHUP: it
re-applies, restarts its workers and this web UI process (which must not keep the old certificate or
cookie key).

Every step that touches the archive is the daemon's (appliance.backup.web_actions: `backup.restore_check`,
`backup.restore`, then `backup.restore_reload` for the SIGHUP): the archives, the stored passphrase and the
state a restore replaces are root's. A typed passphrase between the steps stays in this process's memory (`_DRAFTS`, one gunicorn worker), bound to
the signed-in account and gone after DRAFT_TTL or at the end; never in a page or the (signed, not
encrypted) session cookie. Audit: the API records `backup.restore` (and the mapped revision's `config.apply`
in the restored log); a refusal other than a port question is `backup.restore_refused`, like the CLI.
Non-goal: uploading an archive through the browser (put it in the backup directory, e.g. a USB stick
configured as `backup.dir`).
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for

from appliance.backup import ports as ports_mod
from appliance.config import parse_config
from appliance.errors import MamoriError
from appliance.zones import ZONE_LABELS
from webui import actions
from webui import context as wctx
from webui.context import requires
from webui.views.settings_backup import _archive, has_passphrase
from webui.views.settings_bp import bp

log = logging.getLogger(__name__)
DRAFT_TTL = 15 * 60
RELOAD_SECONDS = 15
MISMATCH_TEXT = (
    "このバックアップは別の機種のポート名を使っています。"
    "それぞれのポートに、この機械のどのポートを使うか選んでください。"
)


@dataclass(frozen=True)
class BackupPort:
    """A port the backup's config names, with what it was used for (so a person can match the cables)."""

    name: str
    uses: str


@dataclass(frozen=True)
class BoxPort:
    name: str
    mac: str = ""
    up: bool | None = None

    @property
    def label(self) -> str:
        parts = [f"MAC {self.mac}"] if self.mac else []
        if self.up is not None:
            parts.append("ケーブル: つながっています" if self.up else "ケーブル: つながっていません")
        return f"{self.name}（{'・'.join(parts)}）" if parts else self.name


@dataclass
class Draft:
    user: str
    archive: str
    passphrase: str  # "" with use_stored: the daemon loads the stored one
    created: float
    ports: list[BackupPort] = field(default_factory=list)
    use_stored: bool = False

    def args(self, choices: dict[str, str] | None = None) -> dict[str, Any]:
        """The restore actions' arguments for this draft (a port mapping as "old=new" pairs)."""
        pairs = [f"{a}={b}" for a, b in (choices or {}).items()]
        return {"actor": self.user, "archive": self.archive, "passphrase": self.passphrase,
                "use_stored": self.use_stored, "ports": pairs}  # fmt: skip


PORT_CODES = (ports_mod.PortMismatchError.code, ports_mod.PortMapError.code)


@dataclass(frozen=True)
class Plan:
    """appliance.backup.ports.PortPlan as the daemon answered it (what the confirm page shows)."""

    wanted: tuple[str, ...]
    present: tuple[str, ...]
    renames: dict[str, str]
    text: str
    original: str

    @property
    def changed(self) -> bool:
        return bool(self.renames)

    def diff(self) -> str:
        return ports_mod.PortPlan(self.wanted, self.present, self.renames, self.text, self.original).diff()


def _plan(raw: dict[str, Any]) -> Plan:
    return Plan(tuple(raw["wanted"]), tuple(raw["present"]), {a: b for a, b in raw["renames"]}, raw["text"],
                raw["original"])  # fmt: skip


def _is_backup(exc: MamoriError) -> bool:
    """A refusal of the backup API (every code of appliance.backup.errors starts "backup")."""
    return exc.code.startswith("backup")


_DRAFTS: dict[str, Draft] = {}
_LOCK = threading.Lock()


def _new_draft(draft: Draft) -> str:
    token = secrets.token_urlsafe(24)
    with _LOCK:
        for key in [k for k, d in _DRAFTS.items() if draft.created - d.created > DRAFT_TTL]:
            del _DRAFTS[key]
        _DRAFTS[token] = draft
    return token


def _draft(token: str) -> Draft:
    """The signed-in account's own draft, or back to the start (expired, another account's, unknown)."""
    account = wctx.user()
    with _LOCK:
        draft = _DRAFTS.get(token)
        if draft is not None and wctx.now() - draft.created > DRAFT_TTL:
            del _DRAFTS[token]
            draft = None
    if draft is None or account is None or draft.user != account.name:
        flash("復元の手続きの有効期限が切れました。もう一度はじめからお願いします。", "warn")
        abort(redirect(url_for("settings.backup_page")))
    return draft


def _drop(token: str) -> None:
    with _LOCK:
        _DRAFTS.pop(token, None)


def box_ports() -> list[BoxPort]:
    """This box's ports, as the restore checks them (appliance.backup.ports), with MAC and link state
    where the kernel tells them (webui.interfaces)."""
    names = ports_mod.detect_ports()
    try:
        from webui.interfaces import detect_ports

        known = {p.name: p for p in detect_ports()}
    except OSError as exc:
        log.warning("restore: no MAC/link details of the ports: %s", exc)
        known = {}
    return [BoxPort(n, known[n].mac, known[n].up) if n in known else BoxPort(n) for n in names]


def describe_ports(config_text: str, wanted: list[str]) -> list[BackupPort]:
    """What each port of the backup was used for: its zone and address, and the VLANs on it."""
    cfg = parse_config(config_text).model
    out = []
    for name in wanted:
        uses = []
        for iface in cfg.interfaces:
            zone = ZONE_LABELS.get(iface.zone) or iface.zone
            address = f" {iface.address}" if iface.address and iface.address != "dhcp" else ""
            if iface.name == name:
                uses.append(f"{zone}{address}")
            elif iface.parent == name:
                uses.append(f"VLAN {iface.vlan}: {zone}{address}")
        out.append(BackupPort(name, "、".join(uses)))
    return out


def choice_problems(wanted: list[str], present: list[str], choices: dict[str, str]) -> dict[str, str]:
    """The reason to show beside each select that cannot stand (empty, not a port here, two onto one)."""
    problems: dict[str, str] = {}
    for port in wanted:
        new = choices.get(port, "")
        if not new:
            problems[port] = "この機械のポートを選んでください。"
        elif new not in present:
            problems[port] = "この機械にないポートです。選び直してください。"
    for port in wanted:
        new = choices.get(port, "")
        others = [p for p in wanted if p != port and new and choices.get(p) == new]
        if others and port not in problems:
            problems[port] = (
                f"{new} は {'、'.join(others)} にも選ばれています。1つのポートには1つだけ割り当ててください。"
            )
    return problems


def _refused(name: str, exc: MamoriError) -> None:
    """A refusal that is not a question about ports: someone tried, worth an entry (as the CLI makes)."""
    wctx.audit("backup.restore_refused", {"archive": name, "error": exc.code})


@bp.route("/backup/restore/<name>", methods=["GET", "POST"])
@requires("backup.manage")
def restore_start(name: str) -> Any:
    name = _archive(name)
    stored = has_passphrase()
    if request.method == "GET":
        return render_template("settings/backup_restore.html", name=name, has_stored=stored)
    use_stored = bool(request.form.get("use_stored")) and stored
    secret = "" if use_stored else request.form.get("passphrase", "")
    if not secret and not use_stored:
        return render_template("settings/backup_restore.html", name=name, has_stored=stored,
                               error="パスフレーズを入力してください。"), 400  # fmt: skip
    draft = Draft(wctx.actor_name("web"), name, secret, wctx.now(), use_stored=use_stored)
    try:
        result = actions.call("backup.restore_check", **draft.args())
    except MamoriError as exc:
        if not _is_backup(exc):
            raise
        _refused(name, exc)
        return render_template("settings/backup_restore.html", name=name, has_stored=stored,
                               error=exc.text("ja")), 400  # fmt: skip
    if "mismatch" in result:  # the backup's config, read with its own ports: what each port was used for
        draft.ports = describe_ports(result["text"], list(result["mismatch"]))
        return redirect(url_for("settings.restore_ports", token=_new_draft(draft)))
    return _confirm(_new_draft(draft), draft, _plan(result["plan"]))


@bp.route("/backup/restore/draft/<token>/ports", methods=["GET", "POST"])
@requires("backup.manage")
def restore_ports(token: str) -> Any:
    draft = _draft(token)
    present = box_ports()
    wanted = [p.name for p in draft.ports]
    names = [p.name for p in present]
    if request.method == "GET":
        choices = {p: p for p in wanted if p in names}
        return _ports_form(token, draft, present, choices, {})
    choices = {p: request.form.get(f"port_{p}", "").strip() for p in wanted}
    problems = choice_problems(wanted, names, choices)
    if problems:
        return _ports_form(token, draft, present, choices, problems), 400
    _archive(draft.archive)
    try:
        result = actions.call("backup.restore_check", **draft.args(choices))
    except MamoriError as exc:
        if not _is_backup(exc):
            raise
        if exc.code not in PORT_CODES:
            _refused(draft.archive, exc)
        return _ports_form(token, draft, present, choices, {}, _port_error(exc)), 400
    if "mismatch" in result:  # a mapping was given: the daemon raises rather than answers; kept for safety
        return _ports_form(token, draft, present, choices, {}, MISMATCH_TEXT), 400
    return _confirm(token, draft, _plan(result["plan"]), choices)


def _port_error(exc: MamoriError) -> str:
    """The API's text, except the mismatch's, which tells CLI users to add --ports: here, the form's own words."""
    return MISMATCH_TEXT if exc.code == ports_mod.PortMismatchError.code else exc.text("ja")


def _ports_form(token: str, draft: Draft, present: list[BoxPort], choices: dict[str, str],
                problems: dict[str, str], error: str = "") -> str:  # fmt: skip
    return render_template("settings/backup_restore_ports.html", token=token, name=draft.archive,
                           backup_ports=draft.ports, box_ports=present, choices=choices, problems=problems,
                           error=error, intro=MISMATCH_TEXT)  # fmt: skip


def _confirm(token: str, draft: Draft, plan: Plan, choices: dict[str, str] | None = None) -> str:
    return render_template("settings/backup_restore_confirm.html", token=token, name=draft.archive, plan=plan,
                           choices=choices or {}, diff=plan.diff())  # fmt: skip


@bp.route("/backup/restore/draft/<token>/cancel", methods=["POST"])
@requires("backup.manage")
def restore_cancel(token: str) -> Any:
    _draft(token)
    _drop(token)
    flash("復元をやめました。機器は変更していません。", "ok")
    return redirect(url_for("settings.backup_page"))


@bp.route("/backup/restore/draft/<token>/run", methods=["POST"])
@requires("backup.manage")
def restore_run(token: str) -> Any:
    draft = _draft(token)
    _archive(draft.archive)
    wanted = [p.name for p in draft.ports]
    choices = {p: request.form.get(f"port_{p}", "").strip() for p in wanted}
    try:
        made = actions.call("backup.restore", **draft.args(choices))["created_ts"]
    except MamoriError as exc:
        if not _is_backup(exc):
            raise
        if exc.code in PORT_CODES:
            if not draft.ports:  # this box's ports changed since the check: ask again from the start
                _drop(token)
                flash(
                    "この機械のポートが確認したときと変わりました。もう一度はじめからお願いします。", "warn"
                )
                return redirect(url_for("settings.restore_start", name=draft.archive))
            return _ports_form(token, draft, box_ports(), choices, {}, _port_error(exc)), 400
        _refused(draft.archive, exc)
        _drop(token)
        flash(f"復元できませんでした。機器は変更していません。{exc.text('ja')}", "error")
        return redirect(url_for("settings.backup_page"))
    _drop(token)
    problem = _apply_restored()
    response = render_template("settings/backup_restored.html", made=made, problem=problem,
                               seconds=RELOAD_SECONDS)  # fmt: skip
    return _then_reload(response, draft.user)


def _apply_restored() -> str:
    """The kernel follows the restored config now (network, firewall, VPN peers, DHCP), as after the CLI."""
    try:
        actions.reconcile(wctx.actor_name("web"))
    except MamoriError as exc:
        log.error("restore: restored, but applying the restored config failed: %s", exc.text("en"))
        return exc.text("ja")
    return ""


def _then_reload(body: str, actor: str) -> Any:
    """Send the page first; only when it is out, ask the daemon to reload (which restarts this process).
    The callback runs outside the request: it sends the action through the app's channel itself."""
    response = make_response(body)
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def reload() -> None:
        try:
            with app.app_context():
                reloaded = actions.call("backup.restore_reload", actor=actor)["reloaded"]
        except MamoriError as exc:
            log.warning("restore: the daemon could not reload: %s", exc.text("en"))
            return
        if not reloaded:
            log.warning("restore: no running daemon to reload; restart the web UI to use the restored keys")

    response.call_on_close(reload)
    return response
