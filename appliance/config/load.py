"""Loading the config: YAML text -> migrated mapping -> validated model -> cross-section checks.

`parse_config` is the single entry point the CLI, the web UI and the daemon share, so the same input is
judged the same way everywhere. It raises ConfigError with every issue found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from appliance.config.messages import issues_from_validation
from appliance.config.migrate import migrate
from appliance.config.model import CURRENT_SCHEMA_VERSION, MamoriConfig
from appliance.config.references import check_references
from appliance.errors import ConfigError, FieldIssue, Message


@dataclass(frozen=True)
class LoadedConfig:
    model: MamoriConfig
    text: str
    warnings: list[FieldIssue]


def load_config_text(text: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}行目" if mark else ""
        where_en = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(
            [
                FieldIssue(
                    "", Message(f"YAML の書き方に誤りがあります {where}", f"YAML syntax error {where_en}")
                )
            ]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            [
                FieldIssue(
                    "", Message("設定は「キー: 値」の形で書いてください", "the config must be a mapping")
                )
            ]
        )
    return raw


def parse_config(text: str) -> LoadedConfig:
    raw = migrate(load_config_text(text), CURRENT_SCHEMA_VERSION)
    try:
        model = MamoriConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc)) from None
    findings = check_references(model)
    if findings.errors:
        raise ConfigError(findings.errors)
    return LoadedConfig(model=model, text=text, warnings=findings.warnings)


def load_config(path: Path) -> LoadedConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [FieldIssue("", Message(f"設定ファイル {path} がありません", f"config file {path} not found"))]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            [
                FieldIssue(
                    "", Message("設定ファイルは UTF-8 で保存してください", "the config file must be UTF-8")
                )
            ]
        ) from None
    return parse_config(text)


def dump_config(model: MamoriConfig, full: bool = False) -> str:
    """YAML for a model; `full` spells out every default (for diffs), otherwise only what was set."""
    data = model.model_dump(mode="json", exclude_defaults=not full)
    data = {"schema_version": CURRENT_SCHEMA_VERSION, **data}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
