"""webui.core.live_config: parsed once per text (a page asks up to four times), a change seen at once."""

from __future__ import annotations

from tests.webui_fixtures import Box, make_box
from webui import core


def test_same_text_parsed_once_and_a_change_seen_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    box: Box = make_box(tmp_path)
    path = box.ctx.paths.config
    with box.app.test_request_context("/"):
        first = core.live_config()
        assert first is not None and first.clinic.name == "さくら内科クリニック"
        assert core.live_config() is first  # the same text: the model already made
        path.write_text(
            path.read_text(encoding="utf-8").replace("さくら内科", "つばき内科"), encoding="utf-8"
        )
        changed = core.live_config()
        assert changed is not None and changed.clinic.name == "つばき内科クリニック"
        path.write_text("clinic: [\n", encoding="utf-8")
        assert core.live_config() is None  # a text that does not parse is never served from the cache
