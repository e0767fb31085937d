"""Hostile files and absurd numbers: every size read from a checkpoint is bounded and checked before allocation."""
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from run_helpers import SMALL, arrays, fails
from tinygan.commands import evaluate, read, sample, ssl, train
from tinygan.models.checkpoint import CheckpointError, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A 5-iteration checkpoint of a tiny GAN."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGAN_OFFLINE", "1")
        train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    return out / "checkpoint.npz"


def rewrite(src, dst, config=None, **members):
    """Copy a checkpoint with config fields changed and members replaced or added (None: removed)."""
    a = arrays(src)
    c = json.loads(str(a["config"]))
    c.update(config or {})
    a["config"] = np.array(json.dumps(c))
    for k, v in members.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    np.savez(dst, **a)
    return dst


def add_zeros(path, name, shape, dtype="<f4"):
    """Append a deflated all-zero npy member whose header honestly says shape: small on disk, large in memory."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
            left, block = int(np.prod(shape)) * np.dtype(dtype).itemsize, bytes(1 << 22)
            while left:
                f.write(block[:min(left, len(block))])
                left -= min(left, len(block))


def every_tool(bad, tmp_path, capsys, words):
    """The same one line (exit 2) from sample, evaluate and train --resume; nothing written."""
    for tool, argv in ((sample.main, ["--checkpoint", str(bad), "--out", str(tmp_path / "s")]),
                       (evaluate.main, ["--checkpoint", str(bad), "--n", "100"]),
                       (train.main, ["--resume", str(bad), "--iterations", "9", "--out", str(tmp_path / "r")])):
        line = fails(tool, argv, capsys)
        assert words in line and "Traceback" not in line, line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("config, words", [
    ({"g_hidden": [1_000_000, 1_000_000]}, "field 'config.g_hidden' is [1000000, 1000000], it must be"),
    ({"d_hidden": [40000, 40000]}, "field 'config.d_hidden' is [40000, 40000], it must be"),
    ({"latent_dim": 10**9}, "field 'config.latent_dim' is 1000000000, it must be a positive integer (at most"),
    ({"g_hidden": [16384] * 16}, "describes a G of"),
    ({"batch_size": 10**12}, "field 'config.batch_size'"),
    ({"seed": -1}, "field 'config.seed' is -1"),
], ids=["g_hidden_1e6", "d_hidden_40k", "latent_1e9", "too_many_params", "batch_1e12", "seed_negative"])
def test_sizes_in_a_config_are_bounded_before_a_model_is_built(ckpt, tmp_path, capsys, config, words):
    every_tool(rewrite(ckpt, tmp_path / "bad.npz", config), tmp_path, capsys, words)


@pytest.mark.parametrize("dtype", ["int64", "complex64"])
def test_weights_must_be_floats(ckpt, tmp_path, capsys, dtype):
    w = arrays(ckpt)["G/0.W"]
    bad = rewrite(ckpt, tmp_path / "bad.npz", **{"G/0.W": w.astype(dtype)})
    every_tool(bad, tmp_path, capsys, f"field 'G/0.W' holds {dtype} numbers; weights and optimizer state are floats")


def test_a_huge_known_member_is_refused_from_its_header_unread(ckpt, tmp_path):
    bad = rewrite(ckpt, tmp_path / "bad.npz", **{"G/0.W": None})
    add_zeros(bad, "G/0.W", (16_000_000,))  # 64 MB of zeros, 60 kB on disk
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"field 'G/0.W' claims 16,000,000 numbers"):
        read_checkpoint(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6, f"{peak / 1e6:.0f} MB allocated while refusing a member by its header"


def test_member_sizes_follow_the_configs_image_and_classes(ckpt, tmp_path):
    """The bound on a member is the model of the config's data: 8 x 8 images of 2 classes make a far smaller one."""
    a = arrays(ckpt)
    config = json.loads(str(a["config"]))
    assert config["image"] == [28, 28] and len(config["classes"]) == 10  # set from the data (MNIST's)
    for key in ("image", "classes", "data"):  # as written before runs recorded their data: MNIST's sizes
        config.pop(key)
    np.savez(tmp_path / "old.npz", **{**a, "config": np.array(json.dumps(config))})
    assert read_checkpoint(tmp_path / "old.npz")[1].get("image") is None  # read whole, as MNIST's model
    small = rewrite(ckpt, tmp_path / "small.npz", {"image": [8, 8], "classes": ["a", "b"]})
    with pytest.raises(CheckpointError, match=r"field 'G/2.W' claims 25,088 numbers \(shape \(32, 784\)\), more than "
                                              r"the 5,792 parameters of the model its config describes"):
        read_checkpoint(small)  # MNIST's 784-pixel weights in a model of 64 pixels


def test_an_unknown_member_is_never_loaded(ckpt, tmp_path, capsys):
    bad = tmp_path / "extra.npz"
    bad.write_bytes(ckpt.read_bytes())
    add_zeros(bad, "junk", (64_000_000,), "|u1")  # 64 MB member no checkpoint holds
    tracemalloc.start()
    a, _ = read_checkpoint(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "junk" not in a and peak < 8e6, f"{peak / 1e6:.0f} MB"
    sample.main(["--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--n", "10"])
    assert (tmp_path / "s" / "samples.png").is_file()


def test_a_header_that_lies_about_its_size(ckpt, tmp_path, capsys):
    bad = rewrite(ckpt, tmp_path / "bad.npz", **{"G/0.W": None})
    with zipfile.ZipFile(bad, "a") as zf:  # claims (10**6, 10**6) float64 but holds 16 bytes
        with zf.open("G/0.W.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
            f.write(bytes(16))
    every_tool(bad, tmp_path, capsys, "claims shape (1000000, 1000000) of float64 (8000000000000 bytes) but holds 16")


def test_a_config_string_of_ten_megabytes(ckpt, tmp_path, capsys):
    bad = rewrite(ckpt, tmp_path / "bad.npz", config={"preset": "x" * 10_000_000})
    every_tool(bad, tmp_path, capsys, "field 'config' must be one JSON string (of at most")


def test_a_pickled_member_is_refused(ckpt, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    a = arrays(ckpt)
    a["G/0.W"] = np.array([{"a": 1}], dtype=object)
    np.savez(bad, **a)
    every_tool(bad, tmp_path, capsys, "holds Python objects")


# --- every numeric flag has a range: one line naming the flag, exit 2, before any work ---

HUGE = "1" + "0" * 29  # 1e29 written out, as an integer flag takes it


@pytest.mark.parametrize("command, argv, flag", [
    (train, ["--seed", "-1"], "--seed"),
    (sample, ["--checkpoint", "x.npz", "--seed", "-1"], "--seed"),
    (ssl, ["--seed", "-1"], "--seed"),
    (evaluate, ["--checkpoint", "x.npz", "--seed", "-1"], "--seed"),
    (train, ["--latent-dim", HUGE], "--latent-dim"),
    (train, ["--g-hidden", HUGE], "--g-hidden"),
    (train, ["--d-hidden", f"64,{HUGE}"], "--d-hidden"),
    (train, ["--g-hidden", ",".join(["8"] * 40)], "--g-hidden"),
    (train, ["--threads", HUGE], "--threads"),
    (sample, ["--checkpoint", "x.npz", "--threads", HUGE], "--threads"),
    (train, ["--eval-n", HUGE], "--eval-n"),
    (train, ["--iterations", HUGE], "--iterations"),
    (train, ["--batch-size", HUGE], "--batch-size"),
    (train, ["--lr", "1e300"], "--lr"),  # up to 1e6 is allowed: the finite guard stops such a run
    (train, ["--aux", "1e300", "--conditional", "--preset", "deep"], "--aux"),
    (sample, ["--checkpoint", "x.npz", "--n", HUGE], "--n"),
    (sample, ["--checkpoint", "x.npz", "--chunk", HUGE], "--chunk"),
    (evaluate, ["--checkpoint", "x.npz", "--n", HUGE], "--n"),
    (ssl, ["--batch-size", "100000"], "--batch-size"),
    (ssl, ["--labels", HUGE], "--labels"),
    (ssl, ["--epochs", HUGE], "--epochs"),
    (ssl, ["--validation", HUGE], "--validation"),
    (ssl, ["--warmup-epochs", HUGE], "--warmup-epochs"),
    (ssl, ["--g-lr", "1e300"], "--g-lr"),
    (ssl, ["--entropy", "1e300"], "--entropy"),
    (ssl, ["--label-offset", HUGE], "--label-offset"),
    (train, ["--label-offset", HUGE], "--label-offset"),
    (read, ["--recognizer", "r.npz", "x.png", "--label-offset", HUGE], "--label-offset"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("--") else None)
def test_every_numeric_flag_has_a_range(command, argv, flag, tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")] if command in (train, ssl) else []
    line = fails(lambda a: command.main(a), [*argv, *out], capsys)
    assert f"argument {flag}:" in line, line
    assert not (tmp_path / "out").exists()  # refused before any work


def test_ssl_batch_larger_than_the_unlabelled_digits(tmp_path, capsys):
    line = fails(ssl.main, ["--quick", "--batch-size", "9000", "--out", str(tmp_path / "out")], capsys)
    assert "--batch-size 9000 is more than the" in line and "unlabelled digits" in line, line


@pytest.mark.parametrize("call, words", [
    (lambda: tg.make_config(iterations=-5), "argument iterations is -5"),
    (lambda: tg.make_config(lr=float("nan")), "argument lr is nan"),
    (lambda: tg.make_config(latent_dim=10**9), "argument latent_dim"),
    (lambda: tg.make_config(gen_hidden=[8]), "unknown settings ['gen_hidden']"),
    (lambda: tg.GAN({**tg.make_config(), "lr": -1}, tg.Backend("numpy")), "config['lr'] is -1"),
    (lambda: tg.GAN(tg.make_config(conditional=True), tg.Backend("numpy")).sample(3, labels=[1, 2, -1]),
     "argument labels must be digits 0-9"),
    (lambda: tg.GAN(tg.make_config(conditional=True), tg.Backend("numpy")).sample(2, labels=[10, 3]),
     "argument labels must be digits 0-9"),
    (lambda: tg.GAN(tg.make_config(conditional=True), tg.Backend("numpy")).sample(3, labels=[1, 2]),
     "argument labels must be 3 integer digits"),
    (lambda: tg.GAN(tg.make_config(), tg.Backend("numpy")).sample(2, labels=[1, 2]), "unconditional"),
    (lambda: tg.GAN(tg.make_config(), tg.Backend("numpy")).sample(-4), "argument n=-4"),
    (lambda: tg.GAN(tg.make_config(), tg.Backend("numpy")).sample(2.5), "argument n must be an integer"),
], ids=["iterations", "lr_nan", "latent", "unknown", "GAN_lr", "label_-1", "label_10", "label_count", "uncond",
        "n_negative", "n_float"])
def test_public_api_arguments_have_ranges(call, words):
    with pytest.raises(ValueError) as e:
        call()
    assert words in str(e.value), str(e.value)


INTERRUPT_IMPORT = """
import sys
STOP_AT = sys.argv[2]
class Stop:  # Ctrl-C arriving while matplotlib is imported (the first ~0.4 s of a command)
    def find_spec(self, name, path=None, target=None):
        if name == STOP_AT:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Stop())
sys.argv = [sys.argv[1], *sys.argv[3:]]
import runpy
runpy.run_path(sys.argv[0], run_name="__main__") if sys.argv[0].endswith(".py") else runpy.run_module(
    "tinygan", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("target, module, argv", [
    ("tinygan", "matplotlib", ["train"]), ("tinygan", "matplotlib", ["ssl", "--quick"]),
    ("tinygan", "numpy", ["sample", "--checkpoint", "x"]), ("tinygan", "tinygan.commands", ["evaluate"]),
    (str(ROOT / "examples" / "train_mnist.py"), "matplotlib", []),
    (str(ROOT / "examples" / "evaluate.py"), "tinygan.commands", ["--checkpoint", "x"])])
def test_ctrl_c_while_starting_is_one_line(target, module, argv, tmp_path):
    p = subprocess.run([sys.executable, "-c", INTERRUPT_IMPORT, target, module, *argv], cwd=tmp_path,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 130 and len(lines) == 1 and "interrupted while starting" in lines[0], p.stderr


# --- --overwrite removes every product of the run it replaces, whatever its kind ---

def test_train_overwrite_over_a_semi_supervised_folder(tmp_path):
    out = tmp_path / "run"
    ssl.main(["--quick", "--out", str(out)])
    assert {"recognizer.npz", "samples.png"} <= {p.name for p in out.iterdir()}
    train.main([*SMALL, "--iterations", "5", "--sample-every", "5", "--out", str(out), "--overwrite"])
    left = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert left == {"checkpoint.npz", "log.jsonl", "config.json", "curves.png", "samples_000005.png"}, left


def test_ssl_overwrite_over_a_gan_folder(tmp_path):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "6", "--sample-every", "3", "--trace", "--out", str(out)])
    assert {"samples_000003.png", "internals.png"} <= {p.name for p in out.iterdir()}
    ssl.main(["--quick", "--out", str(out), "--overwrite"])
    left = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert not [n for n in left if n.startswith("samples_") or n == "internals.png"], left


# --- sample: bounded work, and nothing left behind when stopped ---

def test_a_png_alone_draws_only_its_grid(ckpt, tmp_path, capsys):
    sample.main(["--checkpoint", str(ckpt), "--n", str(10**9), "--format", "png",
                 "--out", str(tmp_path / "s")])  # 10^9 samples for a 100-image grid: instant, not hours
    assert (tmp_path / "s" / "samples.png").is_file()


def test_sample_refuses_what_would_take_too_long(ckpt, tmp_path, capsys):
    line = fails(sample.main, ["--checkpoint", str(ckpt), "--n", "100000", "--format", "npy", "--max-hours", "1e-6",
                               "--out", str(tmp_path / "s")], capsys)
    assert "--n 100000: about" in line and "hours at this machine's measured speed" in line, line
    assert not list((tmp_path / "s").iterdir())


def test_sample_refuses_what_the_disk_cannot_hold(ckpt, tmp_path, capsys):
    line = fails(sample.main, ["--checkpoint", str(ckpt), "--n", str(10**9), "--format", "npy",
                               "--out", str(tmp_path / "s")], capsys)
    assert "the files need 3136.00 GB" in line, line


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_sample_leaves_no_temp_files(ckpt, tmp_path, signum, code):
    out = tmp_path / "s"
    p = subprocess.Popen([sys.executable, "-m", "tinygan", "sample", "--checkpoint", str(ckpt), "--n", "3000000",
                          "--format", "npy", "--out", str(out)], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and not (out.is_dir() and sum(f.stat().st_size for f in out.iterdir()) > 1e6):
        time.sleep(0.05)  # until the temp files have data in them
    p.send_signal(signum)
    err = p.communicate(timeout=60)[1]
    lines = [ln for ln in err.splitlines() if ln.strip() and "chunk" not in ln]
    assert p.returncode == code and len(lines) == 1 and "nothing is left half-written" in lines[0], err
    assert list(out.iterdir()) == [], list(out.iterdir())
