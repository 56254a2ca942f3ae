"""The reason nftables refused a command, as an errno, read from libnftables' real messages (captured from
nft 1.0.6 / libnftables on Debian 12): callers branch on errno.ENOENT, never on the English wording."""

from __future__ import annotations

import errno

import pytest

from firewall.nft import NftError, _error, errno_of

CAPTURED = {
    "delete_absent": "Error: Could not process rule: No such file or directory\n"
    "delete element inet t s { 1.2.3.4 }\n                          ^^^^^^^\n",
    "create_present": "Error: Could not process rule: File exists\n"
    "create element inet t s { 1.2.3.5 }\n                          ^^^^^^^\n",
    "list_absent": "Error: No such file or directory\nlist set inet t nosuch\n                ^^^^^^\n",
    "syntax": "Error: syntax error, unexpected string\nlist sett inet t s\n     ^^^^\n",
    "empty": "",
}


@pytest.mark.parametrize(
    ("case", "expected"),
    [("delete_absent", errno.ENOENT), ("create_present", errno.EEXIST), ("list_absent", errno.ENOENT),
     ("syntax", None), ("empty", None)],
)  # fmt: skip
def test_errno_of_libnftables_messages(case: str, expected: int | None) -> None:
    assert errno_of(CAPTURED[case]) == expected


def test_refusal_carries_the_errno_and_both_languages() -> None:
    exc = _error("変更", "apply the change", CAPTURED["delete_absent"])
    assert isinstance(exc, NftError) and exc.errno == errno.ENOENT and exc.code == "firewall.nft"
    assert "以前の状態のまま" in exc.text("ja") and "previous state is unchanged" in exc.text("en")
