"""Web UI (Flask): Japanese pages for the clinic and the vendor.

`create_app(ctx)` builds the app; `python -m webui.serve` runs it over HTTPS.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Imported lazily so that `import webui.schema` (run by every migration) stays free of Flask."""
    from webui.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
