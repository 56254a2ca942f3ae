"""A number in a URL longer than SQLite's integers is a plain 404, never a 500 page (webui.app.RowIdConverter:
every `<int:...>` route of every area is bounded, so no view has to guard its own lookup)."""

from __future__ import annotations

from tests.webui_fixtures import Box, box_fixture, session_token  # noqa: F401

HUGE = str(2**63)  # one more than SQLite's largest integer


def test_a_too_long_number_in_a_url_is_not_found(box: Box) -> None:
    box.add("inchou", "admin")
    client = box.client()
    box.login(client, "inchou")
    assert client.get(f"/alerts/{2**63 - 1}").status_code == 404  # the largest one is looked up: none
    for path in (f"/alerts/{HUGE}", f"/vpn/windows/{HUGE}/report"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
    r = client.post(f"/alerts/{HUGE}/ack", data={"csrf_token": session_token(client)})
    assert r.status_code == 404
