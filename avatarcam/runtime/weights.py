"""The shipped weights: `weights/manifest.json` lists each file with its sha256, inputs, training data, licence
and the command that rebuilds it. A file is used only when it matches its entry."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


class WeightsError(RuntimeError):
    """A weights file that is missing, corrupt or does not match the manifest; the message names the file."""


def weights_dir() -> Path:
    """`AVATARCAM_WEIGHTS`, else the project's `weights/` folder."""
    env = os.environ.get("AVATARCAM_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    folder = folder or weights_dir()
    path = folder / MANIFEST
    if not path.is_file():
        raise WeightsError(f"no weights manifest at {path}: the weights folder is missing or incomplete")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path} is not valid JSON: {exc}") from None


def checked_file(name: str, folder: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The path of weights file `name` and its manifest entry, after checking its sha256."""
    folder = folder or weights_dir()
    entry = read_manifest(folder).get("files", {}).get(name)
    if entry is None:
        raise WeightsError(f"weights file {name} is not in {folder / MANIFEST}")
    path = folder / name
    rebuild = entry.get("rebuild", "see weights/MODEL_CARD.md")
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing; rebuild it with: {rebuild}")
    if sha256(path) != entry["sha256"]:
        raise WeightsError(
            f"weights file {path} does not match its sha256 in the manifest (corrupt or replaced); "
            f"restore it from the repository or rebuild it with: {rebuild}"
        )
    return path, entry


def check_inputs(name: str, actual: dict[str, list], entry: dict[str, Any]) -> None:
    """Refuses a model whose input names or shapes differ from the manifest's (symbolic dims as strings)."""
    expected = entry.get("inputs", {})
    if {k: [str(d) for d in v] for k, v in actual.items()} != {k: [str(d) for d in v] for k, v in expected.items()}:
        raise WeightsError(f"weights file {name} has inputs {actual}, but the manifest says {expected}")


def add_entry(folder: Path, name: str, **fields: Any) -> dict[str, Any]:
    """Records (or refreshes) a file's manifest entry with its current sha256 and size."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {"files": {}}
    entry = {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size, **fields}
    manifest["files"][name] = entry
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return entry
