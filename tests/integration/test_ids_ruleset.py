"""Real rules through real Suricata: the full ET Open snapshot and the clinic profile selected from it both
pass `suricata -T` with the config Mamori renders; a broken update is refused and the old rules stay.

The snapshot is read from ../shared/data/et-open-2024-04 (never copied into the repo). The rule counts
are printed and recorded as test properties (pytest -rP shows them; junit-xml keeps them).
"""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path

import pytest

from appliance.config.load import load_config
from appliance.errors import ApplyError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from ids import engine, sources
from ids.account import lookup
from ids.engine import build_rules, check_in_staging, materialise
from ids.render import SuricataPaths
from ids.subsystem import IdsSubsystem
from ids.updates import update_rules

REPO = Path(__file__).resolve().parents[2]
ET = REPO.parent / "shared" / "data" / "et-open-2024-04"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not ET.is_dir(), reason="ET Open snapshot ../shared/data/et-open-2024-04 is absent"),
    pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed"),
]


def make_ctx(tmp_path: Path) -> Context:
    paths = Paths(config=tmp_path / "config.yaml", state_dir=tmp_path / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    return Context(paths=paths, db=db)


def cfg_for(profile: str):
    cfg = load_config(REPO / "examples" / "clinic.yaml").model
    return cfg.model_copy(update={"ids": cfg.ids.model_copy(update={"profile": profile})})


@pytest.mark.parametrize("profile", ["full", "clinic"])
def test_et_open_profile_passes_suricata_T(tmp_path: Path, profile: str, record_property) -> None:
    ctx = make_ctx(tmp_path)
    sources.stage(ctx.paths, ET)
    sources.commit_staged(ctx.paths)
    sub = IdsSubsystem(ctx)
    rendered = sub.render(cfg_for(profile))
    built = build_rules(ctx.paths, rendered)
    sub.check(rendered)  # raises ApplyError with Suricata's reason if refused
    record_property(f"{profile}_rules_enabled", built.enabled)
    print(
        f"\nET Open 2024-04, profile {profile}: {built.enabled} rules enabled of {built.total} loaded by suricata -T"
    )
    if profile == "full":
        assert built.enabled > 20_000
    else:
        assert 3_000 < built.enabled < 12_000
    sub.apply(rendered)
    live = SuricataPaths.under(ctx.paths.run_dir)
    assert live.rules.read_text() == built.text and live.yaml.read_text() == rendered.yaml_text
    sub.verify(rendered)
    started = time.monotonic()
    IdsSubsystem(ctx).check(rendered)  # unchanged (another area's config change): no second -T
    assert time.monotonic() - started < 5


def test_offline_tarball_update_through_suricata_update_and_bad_update_refused(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    cfg = cfg_for("clinic")
    IdsSubsystem(ctx).apply(IdsSubsystem(ctx).render(cfg))
    archive = tmp_path / "emerging.rules.tar.gz"  # the layout of ET Open's own download
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(ET.iterdir()):
            tar.add(f, arcname=f"rules/{f.name}")
    good = update_rules(ctx, cfg, url=f"file://{archive}", actor="test")
    assert good.enabled > 3_000 and good.test_seconds > 0
    live_rules = SuricataPaths.under(ctx.paths.run_dir).rules.read_text()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "emerging-scan.rules").write_text(
        'alert tcp any any -> any any (msg:"broken"; nosuchkeyword:1; sid:2999999; rev:1;)\n'
    )
    with pytest.raises(ApplyError) as err:
        update_rules(ctx, cfg, src=broken, actor="test")
    assert "nosuchkeyword" in err.value.text("en") and "動作中の設定はそのまま" in err.value.text("ja")
    assert sources.info(sources.current_source(ctx.paths)).sha256 == good.sha256
    assert SuricataPaths.under(ctx.paths.run_dir).rules.read_text() == live_rules
    with ctx.db.connection() as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["ids.rules.update", "ids.rules.update_failed"]


def test_suricata_T_parses_the_rules_as_the_ids_account_not_root(tmp_path: Path) -> None:
    """Rules come from outside (a download, an upload): `suricata -T` parses them as mamori-ids. Proven by
    the difference: a staged tree left root's own is readable by root and refused when run as the account."""
    account = lookup()
    if account is None:
        pytest.skip("no mamori-ids account (make setup creates it)")
    ctx = make_ctx(tmp_path)
    rendered = IdsSubsystem(ctx).render(cfg_for("clinic"))
    rule = 'alert tcp any any -> any 4444 (msg:"Mamori test"; sid:2999998; rev:1;)\n'
    assert check_in_staging(ctx.paths, rendered, rule) > 0  # the staged tree opened to the account: accepted

    live = SuricataPaths.under(ctx.paths.run_dir)
    closed = SuricataPaths(tmp_path / "closed" / "suricata")
    materialise(live, closed, rendered, rule)
    for path in (tmp_path / "closed", closed.base, closed.rules.parent):
        path.chmod(0o700)  # root's alone, as the daemon's UMask 0077 leaves it
    assert engine.test_config(closed.yaml) > 0  # root reads it
    with pytest.raises(ApplyError):
        engine.test_config(
            closed.yaml, account=account
        )  # the account cannot: so the check above ran as the account
