"""The apply contract is kept by every subsystem explicitly: each one is a `Subsystem` (so `reset` is part
of what it offers, not found by `hasattr`), and a failed first apply resets every subsystem it touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.apply import apply_all
from appliance.config.load import load_config
from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.subsystem import Context, Subsystem
from appliance.subsystems import build_subsystems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"


def test_every_subsystem_of_a_box_is_a_subsystem_with_reset(ctx: Context) -> None:
    built = build_subsystems(ctx)
    assert {"firewall", "ids", "vpn"} <= {s.name for s in built}
    for subsystem in built:
        assert Subsystem in type(subsystem).__mro__, type(subsystem).__name__
        assert callable(subsystem.reset)


class Recorder(Subsystem):
    """Records what the orchestrator asked; `fail` makes its apply raise."""

    def __init__(self, name: str, calls: list[str], fail: bool = False, own_reset: bool = True) -> None:
        self.name, self.calls, self.fail, self.own_reset = name, calls, fail, own_reset

    def render(self, cfg: MamoriConfig) -> str:
        return cfg.clinic.name

    def check(self, rendered: str) -> None:
        self.calls.append(f"check {self.name}")

    def apply(self, rendered: str) -> None:
        self.calls.append(f"apply {self.name}")
        if self.fail:
            raise ApplyError("失敗", "failed")

    def verify(self, rendered: str) -> None:
        self.calls.append(f"verify {self.name}")

    def reset(self) -> None:
        if not self.own_reset:
            return super().reset()  # the protocol's default: nothing
        self.calls.append(f"reset {self.name}")
        return None


def test_a_failed_first_apply_resets_what_it_touched_in_reverse(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    subs = [Recorder("a", calls), Recorder("b", calls, own_reset=False), Recorder("c", calls, fail=True),
            Recorder("d", calls)]  # fmt: skip
    with pytest.raises(ApplyError):
        apply_all(subs, load_config(EXAMPLE).model, None)
    assert calls == ["check a", "check b", "check c", "check d", "apply a", "apply b", "apply c",
                     "reset c", "reset a"]  # fmt: skip
    assert "could not restore" not in caplog.text  # b's default reset is a quiet no-op
