"""The 設定 blueprint object alone, so the settings pages can live in one module each without importing each
other: webui/views/settings.py (the config editor) and every settings_*.py (backup, restore, IDS, SSH, time)
import `bp` from here and add their routes to it; webui/app.py imports all of them, then registers `bp`.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("settings", __name__, url_prefix="/settings")
