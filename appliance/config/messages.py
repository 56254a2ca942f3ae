"""Turns pydantic's validation errors into FieldIssues with a dotted path and a message in ja and en.

Every error type the model can produce has a template here; an unknown type falls back to pydantic's
English text with a Japanese lead-in, so nothing is ever shown without at least a Japanese sentence.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from appliance.errors import FieldIssue, Message

# type -> (ja, en); formatted with the error's ctx plus {input}.
_TEMPLATES: dict[str, tuple[str, str]] = {
    "missing": ("必須の項目です。値を入力してください", "this field is required"),
    "extra_forbidden": (
        "この項目は設定にありません。綴りを確認してください",
        "unknown field; check the spelling",
    ),
    "string_type": ("文字列で入力してください", "must be a string"),
    "int_type": ("整数で入力してください", "must be a whole number"),
    "int_parsing": ("整数で入力してください", "must be a whole number"),
    "bool_type": ("true か false で入力してください", "must be true or false"),
    "bool_parsing": ("true か false で入力してください", "must be true or false"),
    "list_type": ("一覧（- で始まる行）で入力してください", "must be a list"),
    "dict_type": ("項目の集まり（キー: 値）で入力してください", "must be a mapping of keys to values"),
    "model_type": ("項目の集まり（キー: 値）で入力してください", "must be a mapping of keys to values"),
    "model_attributes_type": (
        "項目の集まり（キー: 値）で入力してください",
        "must be a mapping of keys to values",
    ),
    "literal_error": ("使える値は {expected} です", "allowed values are {expected}"),
    "enum": ("使える値は {expected} です", "allowed values are {expected}"),
    "greater_than_equal": ("{ge} 以上にしてください", "must be at least {ge}"),
    "less_than_equal": ("{le} 以下にしてください", "must be at most {le}"),
    "greater_than": ("{gt} より大きくしてください", "must be greater than {gt}"),
    "less_than": ("{lt} より小さくしてください", "must be less than {lt}"),
    "too_short": ("少なくとも {min_length} 個必要です", "needs at least {min_length} item(s)"),
    "too_long": ("{max_length} 個までです", "allows at most {max_length} item(s)"),
    "string_too_short": ("{min_length} 文字以上にしてください", "must be at least {min_length} characters"),
    "string_too_long": ("{max_length} 文字以内にしてください", "must be at most {max_length} characters"),
    "string_pattern_mismatch": ("形式が正しくありません", "has the wrong format"),
    "none_required": ("この項目には値を入れないでください", "must be empty"),
}


def _path(loc: tuple[Any, ...]) -> str:
    """('firewall', 'rules', 2, 'dst') -> 'firewall.rules[2].dst'. Union branch names are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (
            part.startswith(("function-", "literal[")) or part in ("str", "none")
        ):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _format(template: str, ctx: dict[str, Any], value: Any) -> str:
    try:
        return template.format(**ctx, input=value)
    except (KeyError, IndexError):
        return template


def _message(err: dict[str, Any]) -> Message:
    ctx = dict(err.get("ctx") or {})
    if err["type"] == "mamori":
        return Message(ctx["ja"], ctx["en"])
    if err["type"] in _TEMPLATES:
        ja, en = _TEMPLATES[err["type"]]
        ja_ctx = {k: v.replace(" or ", "、") if isinstance(v, str) else v for k, v in ctx.items()}
        return Message(_format(ja, ja_ctx, err.get("input")), _format(en, ctx, err.get("input")))
    return Message("値が正しくありません（" + err["msg"] + "）", err["msg"])


def issues_from_validation(exc: ValidationError) -> list[FieldIssue]:
    """One issue per distinct field; for a union field, prefer the most specific branch's message."""
    by_path: dict[str, FieldIssue] = {}
    for err in exc.errors(include_url=False):
        path = _path(tuple(err["loc"]))
        issue = FieldIssue(path, _message(err))
        # For `X | Literal[...] | None` unions pydantic reports one error per branch; keep a mamori one.
        if path not in by_path or err["type"] == "mamori":
            by_path[path] = issue
    return list(by_path.values())
