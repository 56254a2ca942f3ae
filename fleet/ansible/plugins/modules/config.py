#!/usr/bin/python
# Copyright: Mamori maintainers
# Apache License 2.0 (see the repository's pyproject.toml)
"""mamori.clinic.config: one clinic box's config, applied with commit-confirm over the management link.

Runs on the controller (connection: local) and talks HTTPS to the box's fleet API (fleetapi/api.py in the
Mamori repository). Python standard library only, so it runs wherever ansible-core runs.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: config
short_description: Apply a Mamori box's config with commit-confirm
description:
  - Sends the desired config of one Mamori clinic box to the box's fleet API (C(/api/v1)) over HTTPS,
    normally over the vendor hub's management link.
  - The box validates it with its own rules and the vendor account's rights, and says what would change.
    Nothing is sent to apply when nothing would change (idempotent).
  - In check mode only the validation and the diff run (with C(--diff) the YAML diff is shown); the box is
    not changed. A change the box would refuse fails in check mode too.
  - Otherwise the box applies it with commit-confirm. The module then asks the box again over a new
    connection; only if the box answers does it confirm. If the box stops answering the module does not
    confirm, so the box puts the previous revision back by itself; the module waits for that and fails with
    C(rolled_back=true).
  - Top-level sections left out of O(config) are kept as they are on the box (C(mgmt), C(ssh), C(fleet) are
    the clinic's and cannot be changed by a vendor anyway).
version_added: "1.0.0"
author:
  - Mamori maintainers
options:
  url:
    description: The box's web UI over the management link, for example C(https://10.77.0.17).
    type: str
    required: true
  token:
    description:
      - The vendor account's API token (C(mamori_...)), made by the clinic's administrator. Keep it in
        ansible-vault.
    type: str
    required: true
  config:
    description: The desired config (the same keys as the box's YAML config).
    type: dict
    required: true
  confirm_within:
    description:
      - Seconds the box waits for the confirmation before it rolls the change back by itself (30 to 900).
    type: int
    default: 120
  force_link_cut:
    description:
      - Apply a change that the box says could cut the management link (wan interface or gateway, the web
        UI's port). If the box then stops answering it rolls back by itself.
    type: bool
    default: false
  comment:
    description: The comment of the new revision (the box's audit log shows it).
    type: str
    default: ""
  cert_sha256:
    description:
      - SHA-256 fingerprint of the box's web UI certificate (hex, colons allowed). When given, the connection
        is accepted only with that exact certificate (the box's certificate is normally self-signed).
    type: str
  ca_path:
    description: A CA or certificate file to verify the box's certificate with (when O(cert_sha256) is unset).
    type: path
  validate_certs:
    description: Verify the box's certificate against O(ca_path) or the system CAs when O(cert_sha256) is unset.
    type: bool
    default: true
  timeout:
    description: Seconds for one HTTPS request.
    type: int
    default: 30
  rollback_wait:
    description: Seconds past O(confirm_within) to wait for a box that stopped answering to come back rolled back.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Roll the clinic's config
  mamori.clinic.config:
    url: "https://{{ mamori_link_address }}"
    token: "{{ mamori_token }}"
    cert_sha256: "{{ mamori_cert_sha256 }}"
    config: "{{ mamori_common | combine(mamori_clinic, recursive=true) }}"
    confirm_within: 120
    comment: "Ticket 1234: DICOM from the new X-ray"
"""

RETURN = r"""
revision:
  description: The live revision after the run (the new one when applied, the old one otherwise).
  returned: always
  type: int
previous_revision:
  description: The live revision before the run.
  returned: always
  type: int
applied:
  description: Whether a new revision was applied and confirmed.
  returned: always
  type: bool
rolled_back:
  description: Whether the box put the previous revision back because it was not confirmed.
  returned: always
  type: bool
paths:
  description: The config paths that change (or would change in check mode).
  returned: always
  type: list
  elements: str
reason_ja:
  description: The box's reason in Japanese when it refused or rolled back.
  returned: failure
  type: str
reason_en:
  description: The box's reason in English when it refused or rolled back.
  returned: failure
  type: str
"""

import hashlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import ssl  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

POLL = 2.0
CONFIRM_MARGIN = 5.0  # do not start a confirmation this close to the box's deadline


class Unreachable(Exception):
    """The box did not answer (connection refused, timed out, TLS failed): the link may be cut."""


class Refused(Exception):
    """The box answered with an error: its code, Japanese and English reason, and the whole answer."""

    def __init__(self, status, body):
        error = body.get("error") or {}
        self.status, self.body = status, body
        self.code = error.get("code", "http")
        self.ja, self.en = error.get("ja", ""), error.get("en", f"HTTP {status}")
        issues = body.get("issues") or []
        if issues:
            self.ja += "\n" + "\n".join(f"  - {i.get('path')}: {i.get('ja')}" for i in issues)
            self.en += "\n" + "\n".join(f"  - {i.get('path')}: {i.get('en')}" for i in issues)
        super().__init__(self.en)


class Box:
    """The box's fleet API; every request on a new HTTPS connection (each one crosses the link anew)."""

    def __init__(self, url, token, timeout, cert_sha256=None, ca_path=None, validate_certs=True):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("url must be https://HOST[:PORT]")
        self.host, self.port = parts.hostname, parts.port or 443
        self.token, self.timeout = token, timeout
        self.pin = (cert_sha256 or "").replace(":", "").lower() or None
        if self.pin or not validate_certs:
            self.context = ssl.create_default_context()
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        else:
            self.context = ssl.create_default_context(cafile=ca_path)

    def call(self, method, path, body=None, timeout=None):
        conn = http.client.HTTPSConnection(
            self.host, self.port, timeout=timeout or self.timeout, context=self.context
        )
        try:
            conn.connect()
            if self.pin is not None:
                der = conn.sock.getpeercert(binary_form=True) or b""
                if hashlib.sha256(der).hexdigest() != self.pin:
                    raise ssl.SSLError("the box's certificate does not match cert_sha256")
            data = json.dumps(body).encode("utf-8") if body is not None else None
            headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, "/api/v1" + path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
            raise Unreachable(str(exc)) from exc
        finally:
            conn.close()
        try:
            answer = json.loads(raw.decode("utf-8"))
        except ValueError:
            answer = {"error": {"code": "http", "en": f"HTTP {response.status}: not a Mamori API answer"}}
        if response.status != 200:
            raise Refused(response.status, answer)
        return answer


def _rev_id(answer):
    rev = answer.get("revision") or {}
    return rev.get("id")


def settle(box, before, new_rev, start, confirm_within, rollback_wait):
    """After an apply (answered or not): confirm if the box answers in time, else wait for its rollback.
    Returns (outcome, live revision, detail): outcome is "confirmed", "rolled_back" or "unknown".
    A confirmation the box forbids (HTTP 403, e.g. fleet.not_yours: the pending change is another account's)
    raises Refused at once: asking again until the deadline cannot change the answer."""
    deadline = start + confirm_within
    give_up = deadline + rollback_wait
    last_error = ""
    while time.monotonic() < give_up:
        try:
            state = box.call("GET", "/config", timeout=min(10, box.timeout))
        except Unreachable as exc:
            last_error = str(exc)
            time.sleep(POLL)
            continue
        pending = state.get("pending") or {}
        live = _rev_id(state)
        mine = new_rev if new_rev is not None else (pending.get("revision") if live != before else None)
        if pending and pending.get("revision") == mine and mine is not None:
            if time.monotonic() > deadline - CONFIRM_MARGIN:
                time.sleep(POLL)  # too late to confirm safely: let the box decide
                continue
            try:
                confirmed = box.call("POST", "/config/confirm", {"revision": mine})
            except Unreachable as exc:
                last_error = str(exc)
                continue
            except Refused as exc:
                if exc.status == 403:
                    raise
                last_error = exc.en
                time.sleep(POLL)
                continue
            return "confirmed", _rev_id(confirmed), ""
        if not pending and live == before:
            return "rolled_back", live, ""
        if not pending and mine is not None and live == mine:
            return "confirmed", live, "confirmed by someone else"
        time.sleep(POLL)
    return "unknown", None, last_error


def run(module):
    p = module.params
    if not 30 <= p["confirm_within"] <= 900:
        module.fail_json(msg="confirm_within must be 30..900 seconds")
    try:
        box = Box(p["url"], p["token"], p["timeout"], p["cert_sha256"], p["ca_path"], p["validate_certs"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": False, "applied": False, "rolled_back": False, "paths": []}
    body = {"config": p["config"], "force_link_cut": p["force_link_cut"]}

    def fail(exc, **extra):
        if isinstance(exc, Refused):
            msg = f"Mamori refused ({exc.code}): {exc.ja} / {exc.en}"
            module.fail_json(
                msg=msg, reason_ja=exc.ja, reason_en=exc.en, code=exc.code, **{**result, **extra}
            )
        module.fail_json(msg=f"the box did not answer: {exc}", **{**result, **extra})

    try:
        current = box.call("GET", "/config")
        before = _rev_id(current)
        result["revision"] = result["previous_revision"] = before
        diff = box.call("POST", "/config/diff", body)
    except (Unreachable, Refused) as exc:
        fail(exc)
    if not diff.get("changed"):
        module.exit_json(**result)
    result["paths"] = diff.get("paths") or []
    if module._diff:
        result["diff"] = {"prepared": diff.get("diff", "")}
    refusal = diff.get("refusal")
    if refusal:
        fail(Refused(403, {"error": refusal}))
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)

    start = time.monotonic()
    apply_body = dict(body, confirm_within=p["confirm_within"], comment=p["comment"])
    new_rev, apply_error = None, ""
    try:
        new_rev = _rev_id(box.call("POST", "/config/apply", apply_body))
    except Refused as exc:
        result["changed"] = False
        fail(exc)
    except Unreachable as exc:  # the answer may be lost on a link the change just cut: find out below
        apply_error = str(exc)
    try:
        outcome, live, detail = settle(box, before, new_rev, start, p["confirm_within"], p["rollback_wait"])
    except Refused as exc:  # not ours to confirm: say so now instead of asking again until the deadline
        ja = f"機器が確定を断りました。確定されない変更は機器が自動で元に戻します: {exc.ja}"
        en = f"the box refused the confirmation; an unconfirmed change is rolled back by the box itself: {exc.en}"
        module.fail_json(msg=f"{ja} / {en}", reason_ja=ja, reason_en=en, code=exc.code, **result)
    if outcome == "confirmed":
        result.update(applied=True, revision=live)
        module.exit_json(**result)
    if outcome == "rolled_back":
        result.update(rolled_back=True, revision=live)
        rev = new_rev or "?"
        ja = f"変更（リビジョン {rev}）の後、機器が管理接続で応答しなくなったため確定せず、機器が自動で元に戻しました"
        en = (
            f"the box stopped answering over the management link after the change (revision {rev}), so it was "
            "not confirmed and the box rolled it back by itself"
        )
        module.fail_json(msg=f"{ja} / {en}", reason_ja=ja, reason_en=en, **result)
    waited = p["confirm_within"] + p["rollback_wait"]
    en = f"the box did not answer within {waited} s after the change; state unknown ({detail or apply_error})"
    ja = f"変更の後、機器が {waited} 秒以内に応答しませんでした。状態がわかりません"
    module.fail_json(msg=f"{ja} / {en}", reason_ja=ja, reason_en=en, **result)


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "token": {"type": "str", "required": True, "no_log": True},
            "config": {"type": "dict", "required": True},
            "confirm_within": {"type": "int", "default": 120},
            "force_link_cut": {"type": "bool", "default": False},
            "comment": {"type": "str", "default": ""},
            "cert_sha256": {"type": "str"},
            "ca_path": {"type": "path"},
            "validate_certs": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 30},
            "rollback_wait": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
