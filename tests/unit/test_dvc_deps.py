"""Each DVC stage depends on exactly the project files its command imports (lazy imports included).

The closure is computed from the source (every `import` anywhere in a module,
followed transitively), so a new import that dvc.yaml does not list fails
here instead of leaving a stage stale ("up to date" after a change to how it
works). Folders are not deps: they would also hold files the stage never
imports. The exceptions are declared below, each with its reason.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.unit.test_architecture import ROOT, _imports, _modules

# Imported by every stage but unable to change an output: a change to them must not re-run stages.
NEUTRAL = {
    "src/vocalsep/__init__.py": "the version string and the lazy `vocalsep.Separator` export (no stage uses it)",
    "src/vocalsep/errors.py": "exception classes and their messages",
    "src/vocalsep/env.py": "the process environment: telemetry switches and where ffmpeg is",
    "src/vocalsep/stages/_cli.py": "command-line glue: --params, logging format, exit codes",
}
# Deps that no import reaches: read as data, not imported.
NOT_IMPORTED = {
    "export": {"src/vocalsep/serving/served_model.py": "MLflow loads the served model's code from this file's path"},
}


def import_closure(module: str, modules: dict[str, Path]) -> set[str]:
    """Files (relative to the root) of `module` and everything it imports, transitively, minus NEUTRAL."""
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    graph["vocalsep"] = set()  # its one import is the lazy Separator export, which no stage touches
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules]  # packages
        todo += sorted(graph[name])
    return {str(modules[m].relative_to(ROOT)) for m in seen} - set(NEUTRAL)


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith("src/")}


def test_every_stage_depends_on_exactly_its_import_closure():
    modules = _modules()
    wrong = {}
    for name, stage in stages().items():
        module = stage["cmd"].split(" -m ", 1)[1].split()[0]
        expected = import_closure(module, modules) | set(NOT_IMPORTED.get(name, {}))
        listed = code_deps(stage)
        if listed != expected:
            wrong[name] = {"missing": sorted(expected - listed), "not imported": sorted(listed - expected)}
    assert wrong == {}


def test_evaluate_depends_on_scoring_and_the_neutral_modules_stay_few():
    assert "src/vocalsep/scoring.py" in code_deps(stages()["evaluate"])
    assert all((ROOT / path).is_file() for path in NEUTRAL) and len(NEUTRAL) <= 5
    assert not any(code_deps(stage) & set(NEUTRAL) for stage in stages().values())


def test_the_closure_follows_lazy_imports_inside_functions():
    modules = _modules()
    # export imports trained_on_demo_only inside model_tags(): a lazy import still counts
    assert "src/vocalsep/default_model.py" in import_closure("vocalsep.stages.export", modules)


def test_a_change_to_scoring_makes_dvc_see_evaluate_changed(tmp_path):
    """dvc itself, on the evaluate stage's code deps as dvc.yaml lists them: an edit of scoring.py is seen."""
    import os
    import shutil
    import subprocess
    import sys

    deps = sorted(code_deps(stages()["evaluate"]))
    for dep in deps:
        (tmp_path / dep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / dep, tmp_path / dep)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": "python -c \"open('eval.json', 'w').write('{}')\"", "deps": deps, "outs": ["eval.json"]}}}))
    shutil.copyfile(ROOT / ".dvcignore", tmp_path / ".dvcignore")

    def dvc(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "DVC_NO_ANALYTICS": "1"}, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    dvc("init", "--no-scm", "-q")
    dvc("repro", "-q")
    assert "up to date" in dvc("status")
    scoring = tmp_path / "src/vocalsep/scoring.py"
    scoring.write_text(scoring.read_text() + "\n# how the test set is scored changed\n")
    assert "evaluate" in dvc("status") and "src/vocalsep/scoring.py" in dvc("status")
