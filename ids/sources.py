"""Third-party rule sources installed on the box (ET Open), updated offline or through suricata-update.

Layout under the state directory: ids/sources/et-open/ holds the rule files in use; et-open.prev the ones
before the last update, so a bad update can be rolled back. An update is staged in et-open.new, checked
(at least one rule file, rules parse), then swapped in with renames.
Offline: a directory or a .tar.gz (the ET Open snapshot layout, rules/*.rules). Archive members are
attacker-controlled: only regular files with known suffixes are taken, by their base name, never a path,
link or device; sizes are capped.
Online: `suricata-update` (the Suricata project's own tool) fetches into a staging directory without
testing or reloading; Mamori then installs, tests (`suricata -T`) and live-reloads it itself.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import MamoriError
from appliance.paths import Paths
from ids.rules import load_source

log = logging.getLogger(__name__)

SOURCE = "et-open"
SUFFIXES = (".rules", ".config", ".txt", ".md")
MAX_MEMBER = 64 * 1024 * 1024
MAX_TOTAL = 512 * 1024 * 1024


class RuleSourceError(MamoriError):
    code = "ids.rule_source"


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    files: int
    rules: int
    sha256: str


def sources_dir(paths: Paths) -> Path:
    return paths.state_dir / "ids" / "sources"


def current_source(paths: Paths) -> Path | None:
    d = sources_dir(paths) / SOURCE
    return d if d.is_dir() else None


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(directory.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _copy_dir(src: Path, dst: Path) -> None:
    for f in sorted(src.rglob("*")):
        if f.is_file() and not f.is_symlink() and f.suffix in SUFFIXES and f.stat().st_size <= MAX_MEMBER:
            shutil.copyfile(f, dst / f.name)


def _extract_tar(archive: Path, dst: Path) -> None:
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = Path(member.name).name
                if not member.isreg() or not name.endswith(SUFFIXES) or name.startswith("."):
                    continue
                total += member.size
                if member.size > MAX_MEMBER or total > MAX_TOTAL:
                    raise RuleSourceError("ルールの書庫が大きすぎます", "the rules archive is too large")
                fh = tar.extractfile(member)
                if fh is not None:
                    (dst / name).write_bytes(fh.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RuleSourceError(
            f"ルールの書庫を開けません（{exc}）", f"cannot read the rules archive ({exc})"
        ) from exc


def stage(paths: Paths, src: Path) -> Path:
    """Copy a directory or .tar.gz into sources/et-open.new and check it holds rules."""
    src = Path(src)
    staging = sources_dir(paths) / f"{SOURCE}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if src.is_dir():
        _copy_dir(src, staging)
    elif src.is_file() and src.name.endswith((".tar.gz", ".tgz")):
        _extract_tar(src, staging)
    else:
        raise RuleSourceError(
            f"{src} はルールのフォルダーでも .tar.gz でもありません",
            f"{src} is neither a rules directory nor a .tar.gz",
        )
    if not any(staging.glob("*.rules")) or not load_source(staging):
        shutil.rmtree(staging, ignore_errors=True)
        raise RuleSourceError(f"{src} にルールが見つかりません", f"no rules found in {src}")
    return staging


def commit_staged(paths: Paths) -> SourceInfo:
    """Swap the staged source in; the one it replaces is kept as .prev for rollback."""
    base = sources_dir(paths)
    staging, live, prev = base / f"{SOURCE}.new", base / SOURCE, base / f"{SOURCE}.prev"
    if live.exists():
        shutil.rmtree(prev, ignore_errors=True)
        live.rename(prev)
    staging.rename(live)
    return info(live)


def rollback(paths: Paths) -> SourceInfo:
    """Put the previous source back (after a failed test or reload)."""
    base = sources_dir(paths)
    live, prev, bad = base / SOURCE, base / f"{SOURCE}.prev", base / f"{SOURCE}.bad"
    if not prev.exists():
        raise RuleSourceError(
            "元に戻せる以前のルールがありません", "there is no previous rule set to roll back to"
        )
    shutil.rmtree(bad, ignore_errors=True)
    if live.exists():
        live.rename(bad)
    prev.rename(live)
    return info(live)


def info(directory: Path) -> SourceInfo:
    files = sorted(directory.glob("*.rules"))
    return SourceInfo(directory, len(files), len(load_source(directory)), _digest(directory))


def fetch_with_suricata_update(paths: Paths, url: str | None = None, timeout: float = 600) -> Path:
    """Run suricata-update (ET Open by default, or `url`, which may be file:///...tar.gz) into a staging
    directory, without its own test and reload. Returns the directory holding the fetched *.rules."""
    work = paths.state_dir / "ids" / "suricata-update"
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    conf = work / "update.yaml"
    conf.write_text("# Mamori: sources are given on the command line\n")
    argv = ["suricata-update", "-q", "-D", str(work / "data"), "-c", str(conf), "--no-test", "--no-reload",
            "--no-merge", "-o", str(out), "--suricata", shutil.which("suricata") or "/usr/bin/suricata"]  # fmt: skip
    if url:
        argv += ["--url", url]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuleSourceError(
            f"suricata-update を実行できません（{exc}）", f"suricata-update could not run ({exc})"
        ) from exc
    if proc.returncode != 0 or not any(out.glob("*.rules")):
        why = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuleSourceError(
            "ルールの取得に失敗しました: " + " / ".join(why), "fetching rules failed: " + " / ".join(why)
        )
    log.info("suricata-update fetched %d rule files", len(list(out.glob("*.rules"))))
    return out
