"""The package layout's rules, checked by parsing every import (README, "Layout").

Imports point one way: app -> reroute.pipelines / reroute.evaluation -> texture,
renderer -> the lower reroute packages. These tests read the source with ``ast``
(no imports are executed), so they also see imports inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("reroute", "texture", "renderer", "app")
LOWER = ("io", "body", "correspondence", "uv", "synth", "metrics", "training")
#: functions allowed over MAX_FUNCTION_LINES, each with the reason splitting would obscure it
LONG_FUNCTION_EXCEPTIONS: dict[str, str] = {}
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> list[Path]:
    files = [p for d in PROJECT for p in (REPO / d).rglob("*.py")]
    return sorted(files) + [REPO / "launch.py"]


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    inner = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner |= {id(n) for n in ast.walk(fn)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            # `from reroute import pipelines` imports the subpackage
            names = [f"{base}.{a.name}" for a in node.names] if base in PROJECT else [base]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT:
                out.append((name, node.lineno, id(node) in inner))
    return out


def _layer(module: str) -> str:
    """'lower', 'pipelines', 'evaluation', 'cli', 'api', 'trained' or 'app'."""
    parts = module.split(".")
    if parts[0] in ("texture", "renderer"):
        return "trained"
    if parts[0] == "app" or module == "launch":
        return "app"
    if len(parts) == 1:
        return "api"
    if parts[1] in LOWER or parts[1] == "errors":
        return "lower"
    if parts[1] in ("pipelines", "evaluation"):
        return parts[1]
    if parts[1] in ("cli", "__main__"):
        return "cli"
    # `from reroute import X` where X is a public name of the API
    return "api"


ALLOWED = {
    "lower": {"lower"},
    "trained": {"lower", "trained"},
    "pipelines": {"lower", "trained", "pipelines"},
    "evaluation": {"lower", "trained", "pipelines", "evaluation"},
    "cli": {"lower", "trained", "pipelines", "evaluation", "cli", "api"},
    "api": {"lower", "pipelines", "api"},
}


def _app_may_import(module: str) -> bool:
    parts = module.split(".")
    if parts[0] == "app":
        return True
    if parts[0] != "reroute":
        return False
    return len(parts) == 1 or parts[1] in ("pipelines", "io", "errors") or _layer(module) == "api"


def test_imports_point_one_way():
    bad = []
    for path in _sources():
        me = _module_name(path)
        src = _layer(me)
        for name, line, _ in _imports(path):
            rel = path.relative_to(REPO)
            if src == "app":
                if not _app_may_import(name):
                    bad.append(f"{rel}:{line} app imports {name}")
            elif _layer(name) not in ALLOWED[src] and _layer(name) != src:
                bad.append(f"{rel}:{line} {src} module {me} imports {name} ({_layer(name)})")
    assert not bad, "imports against the layout rule:\n" + "\n".join(bad)


def test_the_rule_checker_catches_an_upward_import(tmp_path):
    # a lower module importing a pipeline is what the rule forbids
    assert _layer("reroute.uv.warp") == "lower"
    assert _layer("reroute.pipelines.pose_transfer") not in ALLOWED["lower"]
    assert _layer("texture.classical") not in ALLOWED["lower"]
    assert not _app_may_import("reroute.body.fit") and _app_may_import("reroute.pipelines.registry")


def test_in_function_imports_say_why():
    """Project imports inside functions carry a one-line reason (a comment on the
    import, on the line above it, or on the block of imports it belongs to)."""
    bad = []
    for path in _sources():
        lines = path.read_text().splitlines()
        for name, line, inner in _imports(path):
            if not inner:
                continue
            i = line - 1
            ok = "#" in lines[i]
            j = i - 1
            while not ok and j >= 0:
                text = lines[j].strip()
                if "#" in text:
                    ok = True
                elif not (text.startswith(("from ", "import ")) or text == ""):
                    break
                j -= 1
            if not ok:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name} with no reason")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_across_modules():
    bad = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PROJECT:
                for a in node.names:
                    if a.name.startswith("_"):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{a.name}")
    assert not bad, "\n".join(bad)


def test_no_long_functions():
    long = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                key = f"{_module_name(path)}.{node.name}"
                if n > MAX_FUNCTION_LINES and key not in LONG_FUNCTION_EXCEPTIONS:
                    long.append(f"{key}: {n} lines")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_public_api_exports_pipelines_dataclasses_and_errors():
    import reroute

    for name in reroute.__all__:
        assert getattr(reroute, name) is not None, name
    for name in ("PoseTransferPipeline", "TryOnPipeline", "render_novel_views", "Correspondence",
                 "UVTexture", "FittedBody", "PersonAnalysis", "InputError", "NoPersonError"):  # fmt: skip
        assert name in reroute.__all__
    for sub in (*LOWER, "pipelines", "evaluation", "cli", "errors"):
        assert f":mod:`reroute.{sub}`" in reroute.__doc__, sub
    with pytest.raises(AttributeError):
        reroute.no_such_name  # noqa: B018


def test_import_reroute_is_light():
    """``import reroute`` (and so ``python -m reroute --help``) loads no torch or mediapipe."""
    code = "import sys, reroute; print(sorted(m for m in ('torch', 'mediapipe', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
