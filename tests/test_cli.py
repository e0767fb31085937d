"""The tinygan command as a new user meets it: installed in a fresh venv, its flags, its messages, sample's files."""
import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import tinygan
from tinygan.run import cli
from tinygan.__main__ import main as tinygan_main
from tinygan.commands import evaluate, sample, ssl, train
from tinygan.data.mnist import read_sums
from tinygan.data.idx import read_idx

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--g-hidden", "32", "--d-hidden", "32", "--batch-size", "16"]


pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


@pytest.fixture(scope="module")
def cond_ckpt(tmp_path_factory):
    """A small conditional checkpoint (deep preset, AC-GAN head), trained for 20 iterations."""
    out = tmp_path_factory.mktemp("cond") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGAN_OFFLINE", "1")
        train.main(["--preset", "deep", "--conditional", "--iterations", "20", "--sample-every", "20", *SMALL,
                    "--out", str(out)])
    return out / "checkpoint.npz"


def readme_snippet():
    """The code block of README's 'Use it from Python' section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def exits(fn, argv, capsys, code=2):
    """Run fn(argv), expect SystemExit(code); return the one line it printed on stderr."""
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == code, err
    assert len(err) == 1, err
    return err[0]


# --- "Done when": a fresh venv, pip install . (not editable), train, sample --format idx, train on it, the API ---

def test_installed_command_in_a_fresh_venv(tmp_path):
    # Under a minute: the venv reuses this interpreter's numpy/matplotlib/tqdm/threadpoolctl (system site packages;
    # a bare venv would download them) and builds the wheel with the installed setuptools (--no-build-isolation).
    src = tmp_path / "src"
    shutil.copytree(ROOT / "tinygan", src / "tinygan", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py, exe = venv / "bin" / "python", venv / "bin" / "tinygan"
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    work = tmp_path / "work"  # run from a folder without the checkout, so only the installed package can be found
    work.mkdir()
    env = {**os.environ, "TINYGAN_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": "",
           "OPENBLAS_NUM_THREADS": "1"}

    def run(*argv):
        r = subprocess.run([str(a) for a in argv], cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    where = run(py, "-c", "import tinygan, importlib.metadata as m; print(tinygan.__file__); "
                          "print(m.requires('tinygan'))")
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    assert all(dep in where for dep in ("numpy", "matplotlib", "tqdm", "threadpoolctl"))
    out = run(exe, "train", "--conditional", "--preset", "deep", *SMALL, "--iterations", "20", "--sample-every", "20",
              "--out", "run")
    assert "generate digits: tinygan sample --checkpoint run/checkpoint.npz" in out
    out = run(exe, "sample", "--checkpoint", "run/checkpoint.npz", "--n", "300", "--format", "idx")
    assert "train on them: tinygan train --data run/samples" in out
    assert sorted(os.listdir(work / "run" / "samples")) == ["MD5SUMS", "train-images-idx3-ubyte",
                                                            "train-labels-idx1-ubyte"]
    out = run(py, "-m", "tinygan", "train", "--data", "run/samples", *SMALL, "--iterations", "10", "--out", "run2")
    assert "on 300 images from run/samples" in out
    (work / "snippet.py").write_text(readme_snippet())
    out = run(py, "snippet.py")
    assert "(20, 28, 28)" in out


def test_readme_snippet_is_a_dozen_lines():
    code = [line for line in readme_snippet().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) <= 14, code
    ast.parse(readme_snippet())


API = ["GAN", "make_config", "Dataset", "load_mnist", "save_checkpoint", "load_checkpoint", "load_gan", "evaluate_gan",
       "evaluate_images", "read_idx", "write_idx", "CheckpointError", "MNISTDataError", "Backend"]


def test_public_api_has_one_line_docstrings():
    assert set(API) <= set(tinygan.__all__)
    for name in API:
        doc = getattr(tinygan, name).__doc__
        assert doc and "\n" not in doc.strip(), f"tinygan.{name} needs a one-line docstring"


def import_graph():
    """{module: modules of tinygan it imports}, from every import between tinygan's modules (top-level or inside a function)."""
    graph = {}
    for path in (ROOT / "tinygan").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        package = parts[:-1]  # what `from .` means in this file
        if parts[-1] == "__init__":
            parts = parts[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                if node.module:  # from .x import y: module x
                    deps.add(".".join(base + node.module.split(".")))
                else:            # from . import x: module x
                    deps |= {".".join(base + [a.name]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tinygan":
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "tinygan"}
        graph[".".join(parts)] = deps
    return graph


def test_no_import_cycle():
    """Every import between tinygan's modules points one way."""
    graph = import_graph()

    def visit(mod, stack):
        assert mod not in stack, f"import cycle: {' -> '.join(stack + [mod])}"
        for dep in sorted(graph[mod] & set(graph)):
            visit(dep, stack + [mod])
    for mod in graph:
        visit(mod, [])
    assert "tinygan.models.classifier" in graph["tinygan.measure.evaluation"]  # the walk sees the imports it guards


# The folders from the bottom up: a module may import its own folder and the folders below it, never one above.
LAYERS = ["engine", "run", "data", "models", "measure", "commands"]


def test_imports_run_downward():
    """engine imports nothing else of tinygan; every other folder only its own and those below it (README, Layout)."""
    def layer(mod):
        parts = mod.split(".")
        return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)  # tinygan itself: the top
    graph = import_graph()
    assert set(LAYERS) == {p.name for p in (ROOT / "tinygan").iterdir() if (p / "__init__.py").exists()}
    for mod, deps in graph.items():
        for dep in deps:
            assert dep.startswith("tinygan"), f"{mod} imports {dep}, outside tinygan"
            assert layer(dep) <= layer(mod), f"{mod} imports {dep}: an import up the layers {LAYERS}"
    assert "tinygan.engine.backend" in graph["tinygan.models.gan"]  # the walk sees the imports it guards


def test_engine_snippet_runs_on_the_engine_folder_alone(tmp_path):
    """README's "engine in 15 lines", with tinygan/engine/ copied alone as a package: no other file is needed."""
    text = (ROOT / "README.md").read_text()
    code = text.split("## The engine in 15 lines", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "import tinygan as tg" in code
    shutil.copytree(ROOT / "tinygan" / "engine", tmp_path / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    code = code.replace("import tinygan as tg", "import engine as tg")
    code += "\nimport sys\nassert not [m for m in sys.modules if m.startswith('tinygan')], 'tinygan was imported'\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "loss" in r.stdout and "|grad|" in r.stdout


# --- the command: help, errors, exit codes ---

def test_help_lists_commands_and_unknown_command_exits_2(capsys):
    assert tinygan_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {c} " in out for c in ("train", "sample", "evaluate", "report"))
    assert tinygan_main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train"], ["sample"], ["evaluate"], ["report"]])
def test_help_prints_no_path_of_this_machine(argv, capsys):
    with pytest.raises(SystemExit) as e:
        tinygan_main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for path in (str(ROOT), str(ROOT.parent), str(Path.home()), sys.prefix):
        assert path not in out


@pytest.mark.parametrize("script", ["augment_mnist.py", "train_classifier.py", "train_mnist.py", "sample.py"])
def test_example_help_prints_no_path_of_this_machine(script):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "usage" in r.stdout
    assert str(ROOT) not in r.stdout and str(ROOT.parent) not in r.stdout


@pytest.mark.parametrize("flags, words", [
    (["--aux", "0.3"], "--aux: the class head needs labels: add --conditional"),
    (["--conditional", "--aux", "0.3"], "the seed preset's D ends in a sigmoid"),
    (["--cuda-graph"], "--cuda-graph: a CUDA graph runs on the GPU: add --backend cupy"),
    (["--backend", "cupy", "--cuda-graph", "--trace"], "--cuda-graph: the tracer reads a step's internals"),
    (["--eval-n", "5"], "--eval-n: 5 samples are too few to score"),
    (["--beta2", "1"], "--beta2: 1 must be in [0, 1)"),
    (["--smooth", "0.3"], "--smooth: 0.3 must be in (0.5, 1]"),
    (["--threads", "0"], "--threads: '0' must be a positive"),
    (["--cond"], "unrecognized arguments: --cond"),  # no abbreviations: what is given is what is named
])
def test_silent_or_bad_flags_are_errors(tmp_path, capsys, flags, words):
    line = exits(train.main, [*flags, "--out", str(tmp_path / "o")], capsys)
    assert words in line
    assert not (tmp_path / "o").exists()


def test_require_full_refuses_the_bundled_split(tmp_path, capsys):
    line = exits(train.main, ["--require-full", "--out", str(tmp_path / "o")], capsys)
    assert "the bundled 10k split was refused (--require-full / TINYGAN_REQUIRE_FULL)" in line


def test_batch_larger_than_the_data_is_an_error(tmp_path, capsys, cond_ckpt):
    sample.main(["--checkpoint", str(cond_ckpt), "--n", "50", "--format", "idx", "--out", str(tmp_path / "s")])
    capsys.readouterr()
    line = exits(train.main, ["--data", str(tmp_path / "s"), "--batch-size", "64", "--out", str(tmp_path / "o")],
                 capsys)
    assert "--batch-size 64 is larger than the training set (50 images)" in line


def test_trace_every_implies_trace_and_eval_n_implies_eval(tmp_path):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--trace-every", "10", "--eval-n", "100", "--out", str(out)])
    assert (out / "internals.png").is_file()
    records = [line for line in (out / "log.jsonl").read_text().splitlines()]
    assert any('"trace"' in r for r in records) and any('"eval"' in r for r in records)


def test_misleading_inputs_get_true_messages(tmp_path, capsys, cond_ckpt):
    run = cond_ckpt.parent
    line = exits(sample.main, ["--checkpoint", str(run)], capsys)
    assert f"--checkpoint: checkpoint '{run}' is a folder: did you mean {cond_ckpt}?" in line
    line = exits(evaluate.main, ["--checkpoint", str(tmp_path / "nope.npz")], capsys)
    assert "does not exist" in line  # exit 2, as train's, not 1
    (tmp_path / "c.json").write_text('{"lr": 0.1}')
    line = exits(sample.main, ["--checkpoint", str(tmp_path / "c.json")], capsys)
    assert "is JSON text, not a tinygan checkpoint" in line and "pickle" not in line
    line = exits(evaluate.main, ["--checkpoint", str(run / "curves.png")], capsys)
    assert "is a PNG image, not a tinygan checkpoint" in line and "pickle" not in line
    gz = Path(tinygan.data.mnist.bundled_dir()) / "t10k-images-idx3-ubyte.gz"
    line = exits(train.main, ["--data", str(gz), "--out", str(tmp_path / "o")], capsys)
    assert f"--data {gz} is a file: pass the folder that holds the IDX files ({gz.parent})" in line
    (tmp_path / "afile").write_text("x")
    line = exits(train.main, ["--out", str(tmp_path / "afile")], capsys)
    assert "--out: " in line and "is a file, not a folder" in line
    line = exits(sample.main, ["--checkpoint", str(cond_ckpt), "--out", str(tmp_path / "afile")], capsys)
    assert "is a file, not a folder" in line
    line = exits(evaluate.main, ["--checkpoint", str(cond_ckpt), "--json", str(tmp_path)], capsys)
    assert "--json: " in line and "is a folder" in line


@pytest.mark.parametrize("n", [2, 1])  # 2 first: the suite itself often runs with OPENBLAS_NUM_THREADS=1
def test_threads_flag_sets_the_blas_pool(n):
    from threadpoolctl import threadpool_info
    limits = cli.set_threads(n)
    try:
        assert all(pool["num_threads"] == n for pool in threadpool_info() if pool["user_api"] == "blas")
    finally:
        limits.restore_original_limits()


def test_every_command_applies_its_threads_flag(tmp_path, monkeypatch, cond_ckpt):
    asked = []
    monkeypatch.setattr(cli, "set_threads", asked.append)
    train.main([*SMALL, "--iterations", "2", "--threads", "3", "--out", str(tmp_path / "t")])
    sample.main(["--checkpoint", str(cond_ckpt), "--n", "4", "--threads", "4", "--out", str(tmp_path / "s")])
    evaluate.main(["--checkpoint", str(cond_ckpt), "--n", "100", "--threads", "5"])
    ssl.main(["--quick", "--threads", "6", "--out", str(tmp_path / "q")])
    assert asked == [3, 4, 5, 6]


# --- sample: what was asked, where expected, in bounded memory ---

def test_sample_writes_only_the_formats_asked_for(tmp_path, cond_ckpt):
    out = tmp_path / "s"
    sample.main(["--checkpoint", str(cond_ckpt), "--n", "25", "--format", "png", "--format", "npz,idx",
                 "--idx-prefix", "t10k", "--out", str(out)])
    assert sorted(os.listdir(out)) == ["MD5SUMS", "samples.npz", "samples.png", "t10k-images-idx3-ubyte",
                                       "t10k-labels-idx1-ubyte"]
    with np.load(out / "samples.npz", allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    assert np.array_equal(read_idx(out / "t10k-images-idx3-ubyte"), images)
    assert read_idx(out / "t10k-labels-idx1-ubyte").tolist() == labels.tolist() == [i % 10 for i in range(25)]
    sums = read_sums(out)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert sums[name] == hashlib.md5((out / name).read_bytes()).hexdigest()


def test_sample_refuses_to_replace_files_unless_told(tmp_path, capsys, cond_ckpt):
    args = ["--checkpoint", str(cond_ckpt), "--n", "10", "--format", "npy", "--out", str(tmp_path)]
    sample.main(args)
    before = (tmp_path / "samples.npy").read_bytes()
    capsys.readouterr()
    assert "already exists: pass --overwrite" in exits(sample.main, [*args, "--seed", "1"], capsys)
    assert (tmp_path / "samples.npy").read_bytes() == before
    sample.main([*args, "--seed", "1", "--overwrite"])
    assert (tmp_path / "samples.npy").read_bytes() != before


def test_sample_needs_labels_for_labelled_formats(tmp_path, capsys):
    train.main([*SMALL, "--iterations", "5", "--out", str(tmp_path / "u")])
    capsys.readouterr()
    line = exits(sample.main, ["--checkpoint", str(tmp_path / "u" / "checkpoint.npz"), "--format", "idx"], capsys)
    assert "--format idx: labels need a conditional checkpoint" in line


def test_sample_streams_in_chunks_with_bounded_memory(tmp_path, cond_ckpt):
    peaks = {}
    for n in (2000, 20000):  # 20000: 63 MB as float32 images, if they were ever held at once
        tracemalloc.start()
        try:
            sample.main(["--checkpoint", str(cond_ckpt), "--n", str(n), "--chunk", "1000", "--format", "npy,idx",
                         "--out", str(tmp_path / str(n))])
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[20000] < 1.2 * peaks[2000] + 1e6 and peaks[20000] < 30e6, peaks  # flat in n
    n, tmp_path = 20000, tmp_path / "20000"
    x = np.load(tmp_path / "samples.npy", mmap_mode="r")
    assert x.shape == (n, 28, 28) and x.dtype == np.float32
    assert np.array_equal(np.rint(np.asarray(x[-5:]) * 255).astype(np.uint8), read_idx(tmp_path /
                          "train-images-idx3-ubyte")[-5:])


def test_sample_checks_free_space_first(tmp_path, capsys, cond_ckpt, monkeypatch):
    monkeypatch.setattr(sample.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 10**6))
    line = exits(sample.main, ["--checkpoint", str(cond_ckpt), "--n", "100000000", "--format", "idx",
                               "--out", str(tmp_path)], capsys)
    assert "--n 100000000: the files need 78.50 GB" in line
    assert os.listdir(tmp_path) == []
