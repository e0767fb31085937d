"""train_ssl.py end to end on the bundled offline data: artefacts, exact resume, the exported recognizer, bad input."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan.recognizer import RecognizerError, load_recognizer, read_digits

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--quick", "--labels", "20"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_ssl = load_script("train_ssl")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """The bundled test split only: no network, no user cache, no $TINYGAN_DATA."""
    monkeypatch.setenv("TINYGAN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGAN_DATA", raising=False)


def arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_quick_run_writes_everything_and_the_recognizer_reads_digits(tmp_path, capsys):
    out = tmp_path / "ssl"
    train_ssl.main([*QUICK, "--out", str(out)])
    assert {"config.json", "log.jsonl", "curves.png", "samples.png", "checkpoint.npz", "recognizer.npz"} <= set(os.listdir(out))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(0 <= r["test_err"] <= 1 and np.isfinite(r["loss_gen"]) for r in records)
    assert "OFFLINE" in capsys.readouterr().out, "the offline split must be announced"

    model, info = load_recognizer(out / "recognizer.npz", tg.Backend("numpy", "float32", 0))
    assert info["labels"] == 20 and info["sizes"] == [784, 64, 32, 10]
    # the exported plain MLP reads the same digits as the averaged D it came from
    from tinygan.augment import experiment_split
    from tinygan.checkpoint import load_checkpoint, read_checkpoint
    from tinygan.ssl import SSLGAN
    _, _, x_test, y_test, _ = experiment_split()
    images = x_test[:300].astype(np.float32) / 255
    config = read_checkpoint(out / "checkpoint.npz")[1]
    gan = SSLGAN(config, tg.Backend("numpy", "float32", 0))
    load_checkpoint(out / "checkpoint.npz", gan)
    digits = read_digits(model, images)
    assert np.array_equal(digits, gan.classify(images.reshape(-1, 784)))
    assert abs(float((digits != y_test[:300]).mean()) - records[-1]["test_err"]) < 0.1


def test_resume_is_bit_identical(tmp_path):
    train_ssl.main([*QUICK, "--out", str(tmp_path / "full")])
    train_ssl.main([*QUICK, "--epochs", "1", "--out", str(tmp_path / "part")])
    train_ssl.main([*QUICK, "--resume", str(tmp_path / "part" / "checkpoint.npz"), "--epochs", "3",
                    "--out", str(tmp_path / "part")])
    full, resumed = arrays(tmp_path / "full" / "checkpoint.npz"), arrays(tmp_path / "part" / "checkpoint.npz")
    assert sorted(full) == sorted(resumed) and "D_ema" in full and "G/1.running_mean" in full
    for k in full:
        assert np.array_equal(full[k], resumed[k]), f"{k} differs after resume"


@pytest.mark.parametrize("flags, words", [
    (["--labels", "25"], "--labels: 25 must be a positive multiple of 10"),
    (["--labels", "9000"], "--labels 9000: 900 of each digit asked for"),
    (["--epochs", "0"], "--epochs: 0 must be positive"),
    (["--ema", "1.5"], "--ema: 1.5 must be in [0, 1)"),
])
def test_bad_flags_are_one_line(tmp_path, flags, words):
    env = {**os.environ, "TINYGAN_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "c")}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "train_ssl.py"), "--quick", *flags,
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_gan_checkpoint_is_refused(tmp_path, capsys):
    train = load_script("train_mnist")
    train.main(["--iterations", "5", "--g-hidden", "8", "--d-hidden", "8", "--batch-size", "4",
                "--out", str(tmp_path / "gan")])
    before = (tmp_path / "gan" / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit) as e:
        train_ssl.main(["--resume", str(tmp_path / "gan" / "checkpoint.npz"), "--out", str(tmp_path / "gan")])
    assert e.value.code == 2 and "train_mnist.py checkpoint" in capsys.readouterr().err
    assert (tmp_path / "gan" / "checkpoint.npz").read_bytes() == before


def test_a_damaged_recognizer_is_a_clear_error(tmp_path):
    bad = tmp_path / "recognizer.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(RecognizerError, match="not a tinygan recognizer"):
        load_recognizer(bad)
