"""train_ssl.py end to end on the bundled offline data: artefacts, exact resume, the exported recognizer, bad input."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygan as tg
from tinygan.models.recognizer import RecognizerError, load_recognizer, read_digits

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--quick", "--labels", "20"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_ssl = load_script("train_ssl")



pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


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
    from tinygan.data.augment import experiment_split
    from tinygan.models.checkpoint import load_checkpoint, read_checkpoint
    from tinygan.models.ssl import SSLGAN
    _, _, x_test, y_test, _ = experiment_split()
    images = x_test[:300].astype(np.float32) / 255
    config = read_checkpoint(out / "checkpoint.npz")[1]
    gan = SSLGAN(config, tg.Backend("numpy", "float32", 0))
    load_checkpoint(out / "checkpoint.npz", gan)
    digits = read_digits(model, images).labels  # read_digits now returns a Reading: labels, confidences, names
    assert np.array_equal(digits, gan.classify(images.reshape(-1, 784)))
    assert abs(float((digits != y_test[:300]).mean()) - records[-1]["test_err"]) < 0.1


def test_resume_is_bit_identical(tmp_path):
    train_ssl.main([*QUICK, "--out", str(tmp_path / "full")])
    train_ssl.main([*QUICK, "--epochs", "1", "--out", str(tmp_path / "part")])
    train_ssl.main(["--resume", str(tmp_path / "part" / "checkpoint.npz"), "--epochs", "3"])
    full, resumed = arrays(tmp_path / "full" / "checkpoint.npz"), arrays(tmp_path / "part" / "checkpoint.npz")
    assert sorted(full) == sorted(resumed) and "D_ema" in full and "G/1.running_mean" in full
    for k in full:
        assert np.array_equal(full[k], resumed[k]), f"{k} differs after resume"
    log = [json.loads(line)["epoch"] for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3]


def test_a_signal_mid_epoch_saves_and_the_resume_is_exact(tmp_path, monkeypatch, capsys):
    from tinygan.models.ssl import SSLGAN
    train_ssl.main([*QUICK, "--out", str(tmp_path / "full")])
    step = SSLGAN.step

    def interrupted(self, *a):
        stats = step(self, *a)
        if self.iteration == 6:  # in the middle of epoch 2 (4 steps an epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return stats
    monkeypatch.setattr(SSLGAN, "step", interrupted)
    with pytest.raises(SystemExit) as e:
        train_ssl.main([*QUICK, "--out", str(tmp_path / "cut")])
    assert e.value.code == 130
    assert "stopped by SIGINT after step 6" in capsys.readouterr().out
    assert int(arrays(tmp_path / "cut" / "checkpoint.npz")["iteration"]) == 6
    monkeypatch.setattr(SSLGAN, "step", step)
    train_ssl.main(["--resume", str(tmp_path / "cut" / "checkpoint.npz")])
    full, resumed = arrays(tmp_path / "full" / "checkpoint.npz"), arrays(tmp_path / "cut" / "checkpoint.npz")
    for k in full:
        assert np.array_equal(full[k], resumed[k]), f"{k} differs after a mid-epoch resume"


def test_a_second_run_never_replaces_the_first(tmp_path, capsys):
    out = tmp_path / "ssl"
    train_ssl.main([*QUICK, "--out", str(out)])
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit) as e:
        train_ssl.main([*QUICK, "--seed", "1", "--out", str(out)])
    assert e.value.code == 2 and "already holds another run" in capsys.readouterr().err
    assert (out / "checkpoint.npz").read_bytes() == before
    with pytest.raises(SystemExit) as e:  # a resumed run may not change how it trains
        train_ssl.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "5", "--lr", "0.1"])
    assert e.value.code == 2 and "--lr cannot change a resumed run" in capsys.readouterr().err
    # a finished run says so and where its recognizer is (it once failed with "nothing to train")
    train_ssl.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "3"])
    said = capsys.readouterr().out
    assert "this run is finished" in said and str(out / "recognizer.npz") in said
    assert (out / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize("flags, words", [
    (["--labels", "25"], "--labels: 25 must be a positive multiple of 10"),
    (["--labels", "-10"], "--labels: '-10' must be a positive"),
    (["--labels", "9000"], "--labels 9000: 900 of each digit asked for"),
    (["--epochs", "0"], "--epochs: '0' must be a positive"),
    (["--ema", "1.5"], "--ema: 1.5 must be in [0, 1)"),
    (["--data", "/nonexistent/mnist"], "/nonexistent/mnist: no such directory"),
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
    assert e.value.code == 2 and "a GAN's from train_mnist.py" in capsys.readouterr().err
    assert (tmp_path / "gan" / "checkpoint.npz").read_bytes() == before


def test_a_damaged_recognizer_is_a_clear_error(tmp_path):
    bad = tmp_path / "recognizer.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(RecognizerError, match="not a tinygan recognizer"):
        load_recognizer(bad)


@pytest.mark.parametrize("script, flag", [("train_mnist", "--resume"), ("sample", "--checkpoint"),
                                          ("evaluate", "--checkpoint")])
def test_the_gan_tools_refuse_a_semi_supervised_checkpoint(tmp_path, capsys, script, flag):
    train_ssl.main([*QUICK, "--out", str(tmp_path / "ssl")])
    before = (tmp_path / "ssl" / "checkpoint.npz").read_bytes()
    with pytest.raises(SystemExit) as e:
        load_script(script).main([flag, str(tmp_path / "ssl" / "checkpoint.npz")])
    assert e.value.code == 2 and "semi-supervised GAN's" in capsys.readouterr().err
    assert (tmp_path / "ssl" / "checkpoint.npz").read_bytes() == before
