"""HTML (Jinja2, autoescaped) and PDF (WeasyPrint) rendering of the checklist and the monthly report.

The HTML is self-contained (inline CSS and SVG, no scripts, no external URLs) so the same file prints,
opens from a USB stick, and converts to PDF without network access. WeasyPrint is imported only when a
PDF is asked for: it needs the pango libraries, which the web UI alone does not.
"""

from __future__ import annotations

import logging
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from appliance.clock import show
from appliance.errors import MamoriError

log = logging.getLogger(__name__)


class RenderError(MamoriError):
    code = "reports.render"


def fmt_ts(ts: float | None, tz: str = "Asia/Tokyo", fmt: str = "%Y-%m-%d %H:%M") -> str:
    return show(ts, tz, fmt, empty="—")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    return f"{minutes // 60}時間{minutes % 60:02d}分" if minutes >= 60 else f"{minutes}分"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters.update(ts=fmt_ts, duration=fmt_duration, bytes=fmt_bytes)
    return env


def render_html(template: str, **context: object) -> str:
    return environment().get_template(f"reports/{template}").render(**context)


def html_to_pdf(html: str, target: Path) -> None:
    """Write the PDF of `html` to `target` (temp file + fsync + rename via atomic_write)."""
    from appliance.fileio import atomic_write

    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: the pango libraries are missing
        raise RenderError("PDF を作れません（WeasyPrint または pango がありません。scripts/setup.sh を実行してください）",
                          f"cannot make PDFs: WeasyPrint or pango missing ({exc})") from exc  # fmt: skip
    # base_url=None and no url_fetcher use: the HTML has no external references to fetch.
    atomic_write(target, HTML(string=html).write_pdf(), mode=0o640)
