"""Each area owns its tables (issue 16.1): no product module names, in SQL, a table another area created.

Ownership comes from where a table is created: the schema module of each area in
appliance.storage.SCHEMA_MODULES (`ids.schema` → ids/, `appliance.backup.schema` → appliance/backup/,
`appliance.schema` → appliance/ ...), plus schema_versions (appliance/storage.py). Another area asks the owner
through its query module (ids/queries.py, vpn/queries.py, firewall/queries.py, appliance/queries.py).
Tests are exempt: they seed and inspect tables directly. There are no exceptions: the kv table is reached
through appliance.storage (Database.get_kv/set_kv/kv_items, set_kv(conn, ...)), the audit log through
appliance.audit (entries_after, newest_id) and appliance.queries.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from appliance.storage import SCHEMA_MODULES

REPO = Path(__file__).resolve().parents[2]
NOT_PRODUCT = {"tests", "bench", "scripts", "lab", "image", "examples", "docs"}

_CREATE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)")


def table_owners() -> dict[str, str]:
    owners = {"schema_versions": "appliance"}
    for name in SCHEMA_MODULES:
        area = name.rsplit(".", 1)[0].replace(".", "/")
        for script in importlib.import_module(name).SCHEMA:
            for table in _CREATE.findall(script):
                owners[table] = area
    return owners


def _sql_pattern(tables: set[str]) -> re.Pattern[str]:
    names = "|".join(sorted(tables, key=len, reverse=True))
    return re.compile(rf"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|EXISTS)\s+({names})\b", re.I)


def named_tables(source: str, tables: set[str]) -> list[tuple[int, str]]:
    """(line, table) for each table named in SQL in a string literal of `source` (f-string parts included),
    and each literal that is exactly the name of a prefixed table (e.g. a list of tables to prune)."""
    sql = _sql_pattern(tables)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            found += [(node.lineno, m.group(1)) for m in sql.finditer(text)]
            if "_" in text and text in tables:
                found.append((node.lineno, text))
    return found


def area_of(rel: str, areas: list[str]) -> str:
    """The most specific area folder holding `rel` ("" for a folder that owns no table)."""
    return next((a for a in sorted(areas, key=len, reverse=True) if rel.startswith(a + "/")), "")


def product_modules() -> list[Path]:
    packages = [d for d in REPO.iterdir() if (d / "__init__.py").exists() and d.name not in NOT_PRODUCT]
    return sorted(p for d in packages for p in d.rglob("*.py"))


def violations() -> list[str]:
    owners = table_owners()
    areas = sorted(set(owners.values()))
    out = []
    for path in product_modules():
        rel = path.relative_to(REPO).as_posix()
        here = area_of(rel, areas)
        for line, table in named_tables(path.read_text(encoding="utf-8"), set(owners)):
            if owners[table] != here:
                out.append(f"{rel}:{line} names {table} (owned by {owners[table]}/)")
    return sorted(set(out))


def test_no_module_names_a_table_of_another_area() -> None:
    found = violations()
    assert found == [], (
        "ask the owning area through its query module (ids/vpn/firewall/appliance queries.py, appliance.audit, "
        "the kv helpers of appliance.storage; add a function there) instead of naming its table: "
        + "; ".join(found)
    )


def test_ownership_follows_the_schema_modules() -> None:
    owners = table_owners()
    assert owners["ids_blocks"] == "ids" and owners["fw_entries"] == "firewall"
    assert owners["vpn_sessions"] == "vpn" and owners["web_users"] == "webui"
    assert owners["backup_runs"] == "appliance/backup" and owners["notify_outbox"] == "appliance/notify"
    assert owners["audit"] == owners["revisions"] == owners["kv"] == "appliance"


def test_the_scan_sees_sql_in_every_form_a_module_writes_it() -> None:
    tables = {"ids_alerts", "vpn_sessions", "fw_history", "audit"}
    source = '''
a = "SELECT ts FROM ids_alerts WHERE ts >= ?"
b = (
    "SELECT * FROM vpn_sessions s"
    " JOIN fw_history h ON h.ip = s.ip"
)
c = f"""DELETE FROM
    audit WHERE id < {n}"""
d = ["fw_history"]
e = "the audit log and ids alerts"  # prose, not SQL
'''
    assert sorted(t for _, t in named_tables(source, tables)) == [
        "audit", "fw_history", "fw_history", "ids_alerts", "vpn_sessions",
    ]  # fmt: skip
    assert area_of("appliance/backup/store.py", ["appliance", "appliance/backup"]) == "appliance/backup"
    assert area_of("metrics/collect.py", ["appliance", "ids"]) == ""
