"""The package's layers and the import rules between them, checked from the source (ast) so they stay true.

A module may import from its own layer or the ones below: the vocabulary and settings at the bottom; then the
devices, tracking, motion and the networks; then the avatar, its animators, edits and new identities; then the
stage chain; the commands at the top. The live path (the pipeline, and every stage, animator, source and sink the
registries name) imports no training code and no torch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "avatarcam"
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"types", "config", "colour", "registry"}),
    frozenset({"io", "audio", "tracking", "motion", "models", "runtime", "assets", "marks"}),
    frozenset({"avatar", "animators", "edits", "identities"}),
    frozenset({"stages", "compositor", "demo", "switcher", "devices", "hotkeys"}),
    frozenset({"pipeline", "render", "bench", "doctor", "eval", "train", "cli", "__init__", "__main__"}),
)
TRAINING = ("avatarcam.train", "avatarcam.models")
HEAVY = ("torch",)  # the live path runs ONNX Runtime, never torch


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports, at any depth of its code (function-level imports too)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def layer(name: str) -> int:
    top = name.split(".")[1] if "." in name else "__init__"
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise ValueError(f"{name}: its top-level part '{top}' has no layer in LAYERS (tests/test_layout.py)")


def source_imports(root: Path) -> dict[str, set[str]]:
    """Module name → the avatarcam modules and outside packages it imports, for every module under `root`."""
    return {module_name(path, root): imports(path, module_name(path, root)) for path in sorted(root.rglob("*.py"))}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a imports b' for each import of a higher layer than the importer's."""
    broken = []
    for name, targets in graph.items():
        for target in sorted(targets):
            if target in graph and target.startswith(PACKAGE + ".") and layer(target) > layer(name):
                broken.append(f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})")
    return broken


def reachable(graph: dict[str, set[str]], start: Iterable[str]) -> dict[str, str]:
    """Every module reachable from `start` by imports (outside packages included, not followed), each with the
    module that first imported it."""
    seen: dict[str, str] = {name: "" for name in start}
    todo = list(seen)
    while todo:
        name = todo.pop()
        for target in graph.get(name, ()):
            if target not in seen:
                seen[target] = name
                if target in graph:
                    todo.append(target)
    return seen


def live_path_violations(graph: dict[str, set[str]], start: Iterable[str]) -> list[str]:
    """'training module x, imported by y' for each training module or heavy package the live path reaches."""
    return [
        f"{name}, imported by {parent}"
        for name, parent in sorted(reachable(graph, start).items())
        if name.startswith(TRAINING) or name.split(".")[0] in HEAVY
    ]


ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def live_entry_points() -> list[str]:
    """The pipeline, the device choice and every module a registry names (stages, animators, sources, sinks)."""
    from avatarcam.registry import ANIMATORS, SINKS, SOURCES, STAGES

    named = [entry for registry in (SOURCES, SINKS, ANIMATORS, STAGES) for entry in registry.entries.values()]
    return [
        "avatarcam.pipeline",
        "avatarcam.devices",
        *(entry.split(":")[0] for entry in named if isinstance(entry, str)),
    ]


def test_no_module_imports_from_a_layer_above_it() -> None:
    assert upward_imports(source_imports(ROOT)) == []


def test_the_live_path_imports_no_training_code_and_no_torch() -> None:
    graph = source_imports(ROOT)
    entries = live_entry_points()
    assert "avatarcam.animators.talking_head.animator" in entries and "avatarcam.stages.animate" in entries
    reached = reachable(graph, entries)
    assert "avatarcam.animators.warp" in reached and "avatarcam.tracking.facemesh" in reached  # it does follow
    assert live_path_violations(graph, entries) == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_rules_catch_an_upward_import_and_training_code_on_the_live_path(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "io/__init__.py": "",
            "io/sinks.py": "def f():\n    from avatarcam.pipeline import LivePipeline\n",  # deep inside a function
            "tracking/__init__.py": "",
            "tracking/tracker.py": "from ..animators import warp\n",  # relative, upward
            "animators/__init__.py": "",
            "animators/warp.py": "import numpy\n",
            "pipeline.py": "from avatarcam.stages import chain\n",
            "stages/__init__.py": "",
            "stages/chain.py": "from avatarcam.train.common import save_atomic\nimport torch\n",
            "train/__init__.py": "",
            "train/common.py": "",
        },
    )
    graph = source_imports(root)
    broken = upward_imports(graph)
    assert "avatarcam.io.sinks (layer 1) imports avatarcam.pipeline (layer 4)" in broken
    assert "avatarcam.tracking.tracker (layer 1) imports avatarcam.animators.warp (layer 2)" in broken
    assert "avatarcam.stages.chain (layer 3) imports avatarcam.train.common (layer 4)" in broken
    assert not any(line.startswith(("avatarcam.pipeline ", "avatarcam.animators.warp ")) for line in broken)
    on_live_path = live_path_violations(graph, ["avatarcam.pipeline"])
    assert "avatarcam.train.common, imported by avatarcam.stages.chain" in on_live_path
    assert "torch, imported by avatarcam.stages.chain" in on_live_path
    assert live_path_violations(graph, ["avatarcam.animators.warp"]) == []
