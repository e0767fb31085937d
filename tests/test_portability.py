"""Engine modules reach arrays only through the backend, never by importing numpy themselves."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinygan"
# Host-side modules: the backend itself, file I/O, plots and metrics on host arrays.
HOST_SIDE = {"backend.py", "mnist.py", "plots.py", "metrics.py", "checkpoint.py", "evaluation.py", "fileio.py", "__main__.py", "report.py", "augment.py",
             "idx.py", "runs.py", "recognizer.py", "experiment.py", "supervised.py", "sources.py", "images.py", "split.py"}


def numpy_imports(path):
    """Line numbers where a file imports numpy directly."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        if any(n == "numpy" or n.startswith("numpy.") for n in names):
            lines.append(node.lineno)
    return lines


def test_engine_modules_do_not_import_numpy():
    engine = [p for p in PACKAGE.rglob("*.py") if p.parent.name != "commands" and p.name not in HOST_SIDE]
    assert len(engine) >= 5, "engine modules not found"
    offenders = {p.name: numpy_imports(p) for p in engine if numpy_imports(p)}
    assert not offenders, f"engine modules import numpy directly (use the backend's xp): {offenders}"


def test_the_guard_sees_an_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom numpy import zeros\n")
    assert numpy_imports(bad) == [2]
