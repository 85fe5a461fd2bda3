"""The rooms of docs/architecture.md hold: no import circle, short functions, no import side effects,
`flows` importable from anywhere, one list of telemetry switches."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vocalsep.env import TELEMETRY_OFF

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 40


def _modules() -> dict[str, Path]:
    found = {}
    for top, base in (("src", ROOT / "src"), ("flows", ROOT)):
        for path in sorted((base / ("vocalsep" if top == "src" else "flows")).rglob("*.py")):
            name = ".".join(path.relative_to(base).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its body (inside functions too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m in modules and m != name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_among_the_project_modules():
    modules = _modules()
    assert "vocalsep.loading" in modules and "flows.pipeline" in modules
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["vocalsep.api"] >= {"vocalsep.separate", "vocalsep.runtime"}  # the graph sees real imports
    assert import_cycles(graph) == []


def test_the_separation_core_loads_nothing_and_knows_no_registry():
    modules = _modules()
    imported = _imports("vocalsep.separate", modules["vocalsep.separate"], modules)
    assert not imported & {"vocalsep.loading", "vocalsep.registry", "vocalsep.serving.pyfunc", "vocalsep.tracking",
                           "vocalsep.base_model.weights"}


def test_a_stage_imports_no_other_stage():
    """Stages hand each other files, never code: what two stages share sits in `vocalsep.stages` itself."""
    modules = _modules()
    shared = {"vocalsep.stages", "vocalsep.stages._cli"}
    stages = [name for name in modules if name.startswith("vocalsep.stages.") and name not in shared]
    assert "vocalsep.stages.validate" in stages
    crossing = {name: sorted(imported) for name in stages
                if (imported := {m for m in _imports(name, modules[name], modules)
                                 if m.startswith("vocalsep.stages.") and m not in shared})}
    assert crossing == {}


def test_no_function_is_longer_than_forty_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in _modules().values() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def _bare_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF}


def test_importing_vocalsep_changes_no_environment(tmp_path):
    """MLflow's scoring server imports the served model's code: that must not rewrite its environment."""
    script = ("import os, json; before = dict(os.environ); import vocalsep, vocalsep.serving.pyfunc, vocalsep.serving.served_model; "
              "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_bare_env(), capture_output=True,
                         text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_command_switches_telemetry_off_where_it_starts(tmp_path):
    script = ("import os; from vocalsep.cli import main as cli; cli.main(['summary', '--params', 'absent.yaml']); "
              "print({k: os.environ.get(k) for k in " + repr(sorted(TELEMETRY_OFF)) + "})")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_bare_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == repr({k: TELEMETRY_OFF[k] for k in sorted(TELEMETRY_OFF)})


def test_the_telemetry_list_is_read_from_one_file():
    listed = (ROOT / "src/vocalsep/telemetry.env").read_text()
    assert all(f"{key}={value}" in listed for key, value in TELEMETRY_OFF.items()) and len(TELEMETRY_OFF) >= 5
    for other in ("Makefile", "Dockerfile", "tests/tiny_repo.py"):
        text = (ROOT / other).read_text()
        assert "telemetry.env" in text or "TELEMETRY_OFF" in text, other
        assert "MLFLOW_DISABLE_TELEMETRY" not in text, f"{other} spells out the list again"


@pytest.mark.parametrize("module", ["flows.pipeline", "flows.serve"])
def test_flows_import_the_normal_way_from_any_folder(tmp_path, module):
    env = {k: v for k, v in _bare_env().items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.__file__)"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip()).resolve() == (ROOT / (module.replace(".", "/") + ".py")).resolve()


def test_no_module_imports_another_modules_private_name():
    """`from vocalsep.x import _y` reaches into x's internals: make the name public or add an API."""
    modules = _modules()
    crossing = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules and node.module != name:
                crossing += [f"{name}: from {node.module} import {a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert crossing == []


# The rooms of docs/architecture.md, from the foundation up: a module imports only modules of its own room
# or of rooms listed before it. A name ending in "." is a folder (every module under it).
ROOMS = [
    ("base", ["vocalsep", "vocalsep.config", "vocalsep.schema", "vocalsep.errors", "vocalsep.env", "vocalsep.devices",
              "vocalsep.metrics", "vocalsep.contracts"]),
    ("audio", ["vocalsep.audio", "vocalsep.file_blocks", "vocalsep.levels", "vocalsep.sources", "vocalsep.ytdlp", "vocalsep.formats",
               "vocalsep.live_io", "vocalsep.demo.",
               "vocalsep.corpus."]),
    ("model", ["vocalsep.model."]),
    ("tracking", ["vocalsep.tracking"]),
    ("core", ["vocalsep.separate", "vocalsep.refine", "vocalsep.streaming", "vocalsep.runtime"]),
    ("loading", ["vocalsep.base_model", "vocalsep.base_model.weights", "vocalsep.registry", "vocalsep.provenance",
                 "vocalsep.loading", "vocalsep.default_model"]),
    ("scoring", ["vocalsep.scoring", "vocalsep.report"]),
    ("training", ["vocalsep.data.", "vocalsep.training."]),
    ("api", ["vocalsep.api", "vocalsep.library"]),
    ("serving", ["vocalsep.serving."]),
    ("promotion", ["vocalsep.base_model.contender"]),
    ("stages", ["vocalsep.stages."]),
    ("commands", ["vocalsep.cli", "vocalsep.cli.", "vocalsep.base_model.publish"]),
    ("orchestration", ["flows."]),
]


def room_of(module: str) -> int:
    """The index in ROOMS of the room that holds `module` (the longest matching name wins)."""
    best, found = -1, None
    for index, (_, names) in enumerate(ROOMS):
        for name in names:
            hit = module.startswith(name) or module == name.rstrip(".") if name.endswith(".") else module == name
            if hit and len(name) > best:
                best, found = len(name), index
    assert found is not None, f"{module} is in no room of ROOMS (docs/architecture.md): place it"
    return found


# The one upward import allowed: `vocalsep.Separator`, exported lazily (module __getattr__), so importing the
# package imports nothing above the base room.
LAZY_EXPORTS = {("vocalsep", "vocalsep.api")}


def test_every_module_is_in_a_room_and_imports_only_its_room_or_rooms_below():
    modules = _modules()
    upward = sorted(f"{name} ({ROOMS[room_of(name)][0]}) imports {other} ({ROOMS[room_of(other)][0]})"
                    for name, path in modules.items() for other in _imports(name, path, modules)
                    if room_of(other) > room_of(name) and (name, other) not in LAZY_EXPORTS)
    assert upward == []


def test_the_room_check_sees_an_upward_import():
    assert room_of("vocalsep.cli.stream") > room_of("vocalsep.separate") > room_of("vocalsep.config")
    assert room_of("vocalsep.corpus.spec") == room_of("vocalsep.audio")
    assert room_of("vocalsep.base_model.contender") > room_of("vocalsep.serving.register")


MAX_MODULE_LINES = 300


def test_no_module_is_over_300_lines_unless_its_docstring_says_why():
    long = [f"{path.relative_to(ROOT)} ({len(path.read_text().splitlines())} lines)" for path in _modules().values()
            if len(path.read_text().splitlines()) > MAX_MODULE_LINES
            and "Over 300 lines:" not in (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert long == []
