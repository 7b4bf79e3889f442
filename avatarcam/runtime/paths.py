"""Where avatarcam keeps what it makes for a user (portrait fine-tunes, face-swap models)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir() -> Path:
    """`AVATARCAM_DATA`, else the platform's user data folder (XDG / LOCALAPPDATA / Application Support)."""
    if env := os.environ.get("AVATARCAM_DATA"):
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "avatarcam"
