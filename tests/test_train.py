"""End-to-end training runs on the bundled offline data: artifacts, exact resume, NaN guard, safe saves, CLI."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygan.models import checkpoint
from tinygan.data.mnist import read_idx
from tinygan.models.gan import GAN

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--g-hidden", "32", "--d-hidden", "32", "--batch-size", "16"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train, sample = load_script("train_mnist"), load_script("sample")


pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


def is_png(path):
    return Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_short_run_writes_every_artifact(tmp_path, capsys):
    out = tmp_path / "run"
    train.main(["--iterations", "300", "--sample-every", "100", "--checkpoint-every", "150", "--log-every", "50",
                "--out", str(out)])
    names = set(os.listdir(out))
    assert {"config.json", "log.jsonl", "curves.png", "checkpoint.npz", "samples_000100.png",
            "samples_000300.png"} <= names
    assert not [n for n in names if n.startswith(".tmp")], "temp files left behind"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [50, 100, 150, 200, 250, 300]
    assert all(np.isfinite(r[k]) for r in records for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert all(is_png(out / n) for n in names if n.endswith(".png"))
    assert json.loads((out / "config.json").read_text())["preset"] == "seed"
    printed = capsys.readouterr().out
    assert "Wrote to" in printed and "checkpoint.npz" in printed


def test_conditional_run_and_sampling(tmp_path):
    out = tmp_path / "cond"
    train.main(["--preset", "deep", "--conditional", "--iterations", "40", "--sample-every", "40", *SMALL,
                "--out", str(out)])
    ckpt = str(out / "checkpoint.npz")
    sample.main(["--checkpoint", ckpt, "--n", "30", "--digit", "7", "--format", "npy,idx", "--out", str(tmp_path / "s")])
    images = np.load(tmp_path / "s" / "samples.npy", allow_pickle=False)
    assert images.shape == (30, 28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert (read_idx(tmp_path / "s" / "train-labels-idx1-ubyte") == 7).all()
    assert read_idx(tmp_path / "s" / "train-images-idx3-ubyte").shape == (30, 28, 28)
    assert sorted(os.listdir(tmp_path / "s")) == ["MD5SUMS", "samples.npy", "train-images-idx3-ubyte",
                                                  "train-labels-idx1-ubyte"]  # only what was asked for
    sample.main(["--checkpoint", ckpt, "--n", "20", "--labelled", "npz", "--out", str(tmp_path / "n")])
    with np.load(tmp_path / "n" / "samples.npz", allow_pickle=False) as f:
        assert f["images"].shape == (20, 28, 28) and f["images"].dtype == np.uint8
        assert f["labels"].tolist() == [i % 10 for i in range(20)]  # every digit in turn
    assert os.listdir(tmp_path / "n") == ["samples.npz"]
    sample.main(["--checkpoint", ckpt, "--n", "20"])  # default: a PNG grid in a folder beside the checkpoint
    assert os.listdir(out / "samples") == ["samples.png"] and is_png(out / "samples" / "samples.png")


def all_arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("flags", [["--preset", "seed"], ["--preset", "deep", "--conditional"]], ids=["seed", "cond"])
def test_resume_is_bit_identical(tmp_path, flags):
    common = [*flags, *SMALL, "--checkpoint-every", "20", "--sample-every", "1000"]
    train.main([*common, "--iterations", "60", "--out", str(tmp_path / "full")])
    train.main([*common, "--iterations", "20", "--out", str(tmp_path / "part")])
    train.main([*common, "--iterations", "60", "--resume", str(tmp_path / "part" / "checkpoint.npz"),
                "--out", str(tmp_path / "part")])
    full, resumed = all_arrays(tmp_path / "full" / "checkpoint.npz"), all_arrays(tmp_path / "part" / "checkpoint.npz")
    assert sorted(full) == sorted(resumed)
    for k in full:
        assert np.array_equal(full[k], resumed[k]), f"{k} differs after resume"
    log = [json.loads(line)["iter"] for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert log == sorted(set(log)), "the resumed log repeats or reorders iterations"


def test_nan_stops_the_run_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "nan"
    real_step = GAN.step

    def step(self, *args):
        stats = real_step(self, *args)
        if self.iteration > 25:
            stats["g_loss"] = stats["g_loss"] * float("nan")
        return stats

    monkeypatch.setattr(GAN, "step", step)
    with pytest.raises(SystemExit, match="stopped at iteration 30: the g_loss became NaN or inf"):
        train.main([*SMALL, "--iterations", "100", "--checkpoint-every", "20", "--log-every", "10", "--out", str(out)])
    arrays = all_arrays(out / "checkpoint.npz")
    assert int(arrays["iteration"]) == 20
    assert all(np.isfinite(v).all() for k, v in arrays.items() if v.dtype.kind == "f")


def test_interrupted_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "crash"
    train.main([*SMALL, "--iterations", "20", "--checkpoint-every", "20", "--out", str(out)])
    good = (out / "checkpoint.npz").read_bytes()

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint.np, "savez", dying_savez)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        train.main(["--iterations", "40", "--checkpoint-every", "20", "--out", str(out),
                    "--resume", str(out / "checkpoint.npz")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "disk full (simulated)" in err and f"cannot write {out / 'checkpoint.npz'}" in err
    assert (out / "checkpoint.npz").read_bytes() == good
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "-3"], "--batch-size: '-3' must be a positive"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--resume", "missing.npz"], "--resume: checkpoint 'missing.npz' does not exist"),
    (["--lr", "abc"], "--lr: 'abc' is not a float"),
    (["--beta1", "1.5"], "--beta1: 1.5 must be in [0, 1)"),
    (["--g-hidden", "128,x"], "--g-hidden: '128,x' is not a list of positive sizes"),
    (["--backend", "cuda"], "invalid choice: 'cuda'"),
    (["--data", "/nonexistent/mnist"], "--data /nonexistent/mnist: no such directory"),
])
def test_cli_rejects_bad_flags(tmp_path, flags, words):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mnist.py"), *flags, "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_damaged_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--resume", str(bad), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--resume: checkpoint" in err and "is HTML or XML, not a tinygan checkpoint" in err


def test_eval_during_training_logs_the_frechet_curve(tmp_path):
    out = tmp_path / "ev"
    train.main([*SMALL, "--conditional", "--preset", "deep", "--aux", "1", "--iterations", "40", "--eval-every", "20",
                "--eval-n", "200", "--out", str(out)])
    evals = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "eval" in r]
    assert [r["iter"] for r in evals] == [20, 40]
    assert all(np.isfinite(r["eval"]["fd"]) and 0 <= r["eval"]["cond_accuracy"] <= 1 for r in evals)
    assert is_png(out / "curves.png")


def test_evaluation_does_not_change_training(tmp_path):
    """Scoring draws its own noise: the trained parameters are the same with or without it."""
    train.main([*SMALL, "--iterations", "30", "--eval-every", "10", "--eval-n", "100", "--out", str(tmp_path / "a")])
    train.main([*SMALL, "--iterations", "30", "--out", str(tmp_path / "b")])
    a, b = all_arrays(tmp_path / "a" / "checkpoint.npz"), all_arrays(tmp_path / "b" / "checkpoint.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith(("G/", "D/")))
