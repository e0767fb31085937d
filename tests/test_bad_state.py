"""Bad state never costs a run: checkpoints checked on load in every tool, write failures in one line."""
import json
import os
import signal
import time

import numpy as np
import pytest

from run_helpers import SMALL, arrays, fails
from tinygan.run import runs
from tinygan.commands import evaluate, sample, train
from tinygan.models.gan import GAN

pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


# --- checkpoints checked on load, in every tool ---

def edit(src, dst, change):
    a = arrays(src)
    config = json.loads(str(a["config"]))
    change(a, config)
    a["config"] = np.array(json.dumps(config))
    np.savez(dst, **a)


@pytest.mark.parametrize("change, words", [
    (lambda a, c: c.pop("latent_dim"), "field 'config.latent_dim' is missing"),
    (lambda a, c: c.pop("smooth"), "field 'config.smooth' is missing"),
    (lambda a, c: c.update(g_out="softplus"), "field 'config.g_out' is 'softplus', it must be 'sigmoid' or 'tanh'"),
    (lambda a, c: c.update(g_hidden=[-3]), "field 'config.g_hidden' is [-3], it must be a list of positive"),
    (lambda a, c: c.update(batch_size="64"), "field 'config.batch_size' is '64', it must be a positive integer"),
    (lambda a, c: a.update(iteration=np.arange(3)), "field 'iteration' must be one integer >= 0"),
    (lambda a, c: a.update(rng_state=np.array('{"state": 1}')), "field 'rng_state' is not a random generator"),
    (lambda a, c: a.update(rng_state=np.array('{"bit_generator": "PCG64"}')), "field 'rng_state' is not a random"),
    (lambda a, c: a["G/0.W"].__setitem__((0, 0), np.nan), "field 'G/0.W' holds NaN or inf"),
    (lambda a, c: a.update({"D/0.W": a["D/0.W"][:5]}), "field 'D' does not match the model of its config"),
    (lambda a, c: a.pop("opt_g/v.0"), "field 'opt_g' does not match"),
], ids=["latent_dim", "smooth", "g_out", "sizes", "batch", "iteration", "rng", "rng2", "nan", "shape", "adam"])
def test_bad_checkpoints_are_one_line_in_every_tool(tmp_path, capsys, change, words):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    bad = tmp_path / "bad.npz"
    edit(out / "checkpoint.npz", bad, change)
    for tool, argv in ((train.main, ["--resume", str(bad), "--iterations", "9", "--out", str(tmp_path / "r")]),
                       (sample.main, ["--checkpoint", str(bad), "--out", str(tmp_path / "s")]),
                       (evaluate.main, ["--checkpoint", str(bad), "--n", "100"])):
        line = fails(tool, argv, capsys)
        assert f"checkpoint '{bad}'" in line and words in line, line
    assert not (tmp_path / "s").exists()


def test_a_config_that_is_not_a_dictionary(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    a = arrays(out / "checkpoint.npz")
    a["config"] = np.array("[1, 2]")
    np.savez(tmp_path / "bad.npz", **a)
    line = fails(sample.main, ["--checkpoint", str(tmp_path / "bad.npz")], capsys)
    assert "field 'config' is a list, not a dictionary of settings" in line


# --- write failures ---

def test_write_failures_are_one_line(tmp_path, capsys):
    line = fails(train.main, [*SMALL, "--iterations", "5", "--out", "/sys/tinygan-run"], capsys)
    assert "--out '/sys/tinygan-run': cannot create the folder" in line
    out = tmp_path / "run"
    out.mkdir()
    (out / "curves.png").mkdir()  # a folder where a file is to go
    line = fails(train.main, [*SMALL, "--iterations", "5", "--out", str(out)], capsys)
    assert f"cannot write {out / 'curves.png'}: Is a directory" in line
    assert int(arrays(out / "checkpoint.npz")["iteration"]) == 5  # saved before the pictures
    assert not list(out.glob(".tmp-*"))


def test_a_full_disk_during_sampling_leaves_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    calls = []

    def full(path):  # fsync is where a full disk shows on many file systems
        calls.append(path)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    line = fails(sample.main, ["--checkpoint", str(out / "checkpoint.npz"), "--format", "npy",
                               "--out", str(tmp_path / "s")], capsys)
    assert f"cannot write {tmp_path / 's' / 'samples.npy'}: No space left on device" in line
    assert calls and os.listdir(tmp_path / "s") == []


def test_evaluate_gan_scores_on_the_gans_own_backend(monkeypatch):
    from tinygan.measure import evaluation
    from tinygan.engine.backend import Backend
    from tinygan.models.gan import make_config
    gan = GAN(make_config("seed", g_hidden=[16], d_hidden=[16]), Backend("numpy", "float64", seed=3))
    seen = []
    real = evaluation._features
    monkeypatch.setattr(evaluation, "_features", lambda be, *a: (seen.append(be), real(be, *a))[1])
    evaluation.evaluate_gan(gan, 100)
    assert seen and all((be.name, be.dtype) == (gan.be.name, gan.be.dtype) for be in seen)


def test_the_run_machinery_serves_another_training_script(tmp_path):
    """What a second script (e.g. a semi-supervised trainer counting epochs) reuses from tinygan.run.runs."""
    out = tmp_path / "ssl"
    out.mkdir()
    (out / "log.jsonl").write_text('{"iter": 5}\n')
    (out / "recognizer.npz").write_bytes(b"old")
    with pytest.raises(runs.UsageError, match="already holds another run"):
        runs.Run(str(out), prog="train_ssl.py")
    run = runs.Run(str(out), overwrite=True, outputs=("recognizer.npz",), prog="train_ssl.py")
    run.start()
    assert sorted(os.listdir(out)) == [".lock"]
    run.close()
    with runs.Signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # handled between two bytecodes: no exception, just a flag
        for _ in range(100):
            if stop.signum:
                break
            time.sleep(0.01)
    assert stop.signum == signal.SIGTERM and stop.exit_code == 143
    with pytest.raises(runs.UsageError, match="the checkpoint is at epoch 3 and --epochs asks for 2"):
        runs.check_target(3, 2, 10, "--epochs", "epochs")
    assert runs.check_target(3, None, 10, "--epochs", "epochs") == 10
    assert runs.first_nonfinite({"loss": 1.0, "D's weights": np.array([0.0, np.nan])}) == "D's weights"
    assert runs.first_nonfinite({"step": 1, "loss": float("inf"), "w": np.zeros(2)}) == "loss"  # plain numbers too
    assert runs.first_nonfinite({"step": 1, "w": np.float32(0), "x": np.zeros(2)}) is None
