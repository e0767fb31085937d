"""Nothing lost, nothing silent: one run per folder, resume rules, tracing, signals, end of run, the log, bad state."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygan import runs
from tinygan.commands import evaluate, sample, train
from tinygan.gan import GAN

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--g-hidden", "32", "--d-hidden", "32", "--batch-size", "16"]


pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


def arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def same_state(a, b):
    a, b = arrays(a), arrays(b)
    assert sorted(a) == sorted(b)
    return [k for k in a if not np.array_equal(a[k], b[k])]


def fails(fn, argv, capsys, code=2):
    """Run fn(argv), expect SystemExit(code); return its one stderr line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.strip() and "it/s" not in line and not line.startswith("tinygan: ")]  # bar, fallback notice
    assert e.value.code == code, err
    assert len(err) == 1, err
    return err[0]


def log_iters(out):
    return [json.loads(line)["iter"] for line in (out / "log.jsonl").read_text().splitlines()]


# --- one run per folder ---

def test_a_second_run_never_replaces_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--sample-every", "10", "--out", str(out)])
    before = (out / "checkpoint.npz").read_bytes()
    line = fails(train.main, [*SMALL, "--iterations", "5", "--out", str(out)], capsys)
    assert (f"--out {out} already holds another run (checkpoint at iteration 20, log up to iteration 20): to "
            f"continue it pass --resume {out / 'checkpoint.npz'}; to replace it pass --overwrite") in line
    assert (out / "checkpoint.npz").read_bytes() == before
    train.main([*SMALL, "--iterations", "5", "--sample-every", "5", "--out", str(out), "--overwrite"])
    assert int(arrays(out / "checkpoint.npz")["iteration"]) == 5
    assert sorted(p.name for p in out.glob("samples_*")) == ["samples_000005.png"]  # the old run's are gone
    assert log_iters(out) == [5]


def test_a_live_run_holds_its_folder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    other = runs.Run(str(out), prog="tinygan train")  # another run, live in this folder
    try:
        line = fails(train.main, [*SMALL, "--iterations", "5", "--out", str(out)], capsys)
        assert f"--out {out} is in use by another run (process {os.getpid()}: tinygan train" in line
    finally:
        other.close()
    train.main([*SMALL, "--iterations", "5", "--out", str(out)])  # the lock went with its process


def test_resume_writes_beside_its_checkpoint_or_into_a_fresh_out(tmp_path):
    a = tmp_path / "a"
    train.main([*SMALL, "--iterations", "20", "--log-every", "10", "--out", str(a)])
    log_a = (a / "log.jsonl").read_text()
    train.main(["--resume", str(a / "checkpoint.npz"), "--iterations", "40", "--log-every", "10",
                "--out", str(tmp_path / "b")])
    assert (a / "log.jsonl").read_text() == log_a  # the other run's log is never appended to
    assert log_iters(tmp_path / "b") == [10, 20, 30, 40]
    train.main(["--resume", str(a / "checkpoint.npz"), "--iterations", "30", "--log-every", "10"])  # no --out
    assert log_iters(a) == [10, 20, 30] and int(arrays(a / "checkpoint.npz")["iteration"]) == 30


# --- resume semantics ---

@pytest.mark.parametrize("flags, words", [
    (["--conditional"], "--conditional cannot change a resumed run: the checkpoint's conditional is false"),
    (["--preset", "deep"], "--preset cannot change a resumed run: the checkpoint's preset is \"seed\""),
    (["--lr", "0.5"], "--lr cannot change a resumed run: the checkpoint's lr is 0.0002"),
    (["--batch-size", "8"], "--batch-size cannot change a resumed run: the checkpoint's batch_size is 16"),
    (["--seed", "99"], "--seed cannot change a resumed run: the checkpoint's seed is 0"),
    (["--iterations", "20"], "the checkpoint is at iteration 20 and --iterations asks for 20: nothing to train"),
    (["--iterations", "5"], "pass --iterations above 20"),
    ([], "the checkpoint's target (20 iterations) asks for 20: nothing to train"),
])
def test_resume_refuses_what_it_cannot_honour(tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--out", str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = fails(train.main, ["--resume", str(out / "checkpoint.npz"), *flags], capsys)
    assert words in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing rewritten


def test_resume_accepts_run_control_and_unchanged_settings(tmp_path):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "10", "--out", str(out)])
    train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "20", "--preset", "seed", "--seed", "0",
                "--batch-size", "16", "--log-every", "5", "--sample-every", "20", "--checkpoint-every", "5"])
    assert int(arrays(out / "checkpoint.npz")["iteration"]) == 20


# --- tracing never changes training ---

def test_tracing_changes_nothing_a_run_computes(tmp_path):
    common = [*SMALL, "--preset", "deep", "--conditional", "--sample-every", "1000", "--checkpoint-every", "10"]
    train.main([*common, "--iterations", "30", "--out", str(tmp_path / "plain")])
    train.main([*common, "--iterations", "30", "--trace", "--trace-every", "5", "--out", str(tmp_path / "traced")])
    train.main([*common, "--iterations", "10", "--trace", "--out", str(tmp_path / "resumed")])
    train.main(["--resume", str(tmp_path / "resumed" / "checkpoint.npz"), "--iterations", "30", "--trace-every", "5"])
    plain = tmp_path / "plain" / "checkpoint.npz"
    assert same_state(plain, tmp_path / "traced" / "checkpoint.npz") == []
    assert same_state(plain, tmp_path / "resumed" / "checkpoint.npz") == []


# --- interrupts ---

def start(out, *flags):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, str(ROOT / "examples" / "train_mnist.py"), *SMALL, "--iterations", "100000",
                          "--log-every", "10", "--out", str(out), *flags], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # until it has trained a little
        if (out / "log.jsonl").is_file() and (out / "log.jsonl").read_text().count("\n") >= 2:
            return p
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the run did not start: " + p.communicate()[1])


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_and_says_how_to_resume(tmp_path, sig, code):
    out = tmp_path / "run"
    p = start(out, "--checkpoint-every", "1000000")
    second = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mnist.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and f"is in use by another run (process {p.pid}:" in second.stderr
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == code, stderr
    assert "Traceback" not in stderr
    it = int(arrays(out / "checkpoint.npz")["iteration"])
    assert it >= 20  # saved where it stopped (no --checkpoint-every was reached)
    line = [ln for ln in stdout.splitlines() if "stopped by" in ln][0]
    assert (f"stopped by {signal.Signals(sig).name} after iteration {it}; saved {out / 'checkpoint.npz'}. To continue: "
            f"python examples/train_mnist.py --resume {out / 'checkpoint.npz'}") in line
    assert log_iters(out)[-1] == it and not list(out.glob(".tmp-*"))


def test_temp_files_of_dead_processes_are_cleaned(tmp_path):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [f".tmp-{int(dead.stdout)}-abc123.npz", ".tmp-k2j4h5.npz"]  # a killed writer's; an older release's
    live = f".tmp-{os.getppid()}-xyz.png"  # a live process's: left alone
    for name in stale + [live]:
        (out / name).write_bytes(b"half a file")
    train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "10"])
    assert sorted(p.name for p in out.glob(".tmp-*")) == [live]


# --- end of run ---

def test_end_of_run_checkpoints_then_evaluates_then_plots(tmp_path, monkeypatch):
    order = []
    for name, label in (("save_checkpoint", "checkpoint"), ("evaluate_gan", "evaluation"), ("plot_curves", "curves")):
        real = getattr(train, name)
        monkeypatch.setattr(train, name, lambda *a, _real=real, _label=label, **k: (order.append(_label),
                                                                                  _real(*a, **k))[1])
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--eval", "--eval-n", "100", "--out", str(out)])
    assert order == ["checkpoint", "evaluation", "curves"]
    evals = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "eval" in r]
    assert [r["iter"] for r in evals] == [20]  # --eval alone: the final FD point is on the curves


def test_a_failed_evaluation_costs_nothing(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ValueError("no classifier today")
    monkeypatch.setattr(train, "evaluate_gan", broken)
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--eval", "--out", str(out)])
    assert int(arrays(out / "checkpoint.npz")["iteration"]) == 20 and (out / "curves.png").is_file()
    err = capsys.readouterr().err
    assert "evaluation at iteration 20 failed, training goes on: no classifier today" in err


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--log-every", "10", "--out", str(out)])
    with open(out / "log.jsonl", "a") as f:
        f.write('{"iter": 30, "d_lo')  # a run killed while writing its log
    capsys.readouterr()
    train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "30"])
    assert "log.jsonl: line 3 is incomplete (a run stopped while writing it); dropped it" in capsys.readouterr().err
    assert log_iters(out) == [10, 20, 30]


# --- the finite guard ---

@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_huge_learning_rate_stops_before_saving_infinities(tmp_path):
    out = tmp_path / "run"  # deep preset, lr 1e6: the losses stay finite, Adam's second moments overflow
    with pytest.raises(SystemExit) as e:
        train.main(["--preset", "deep", "--batch-size", "16", "--iterations", "40", "--lr", "1e6", "--log-every", "10",
                    "--out", str(out)])
    assert "stopped at iteration 10: G's Adam second moments became NaN or inf" in e.value.code
    assert "no checkpoint was saved yet" in e.value.code  # not "the last good checkpoint is untouched"
    assert not (out / "checkpoint.npz").exists()


def test_nonfinite_moments_are_caught_and_the_message_is_true(tmp_path, monkeypatch):
    real_step = GAN.step

    def step(self, *args):
        stats = real_step(self, *args)
        if self.iteration == 7:
            self.opt_d.v[0][3] = np.inf  # the losses are still finite
        return stats
    monkeypatch.setattr(GAN, "step", step)
    with pytest.raises(SystemExit) as e:
        train.main([*SMALL, "--iterations", "50", "--log-every", "10", "--out", str(tmp_path / "a")])
    assert "stopped at iteration 10: D's Adam second moments became NaN or inf" in e.value.code
    assert "no checkpoint was saved yet" in e.value.code and not (tmp_path / "a" / "checkpoint.npz").exists()


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
    from tinygan import evaluation
    from tinygan.backend import Backend
    from tinygan.gan import make_config
    gan = GAN(make_config("seed", g_hidden=[16], d_hidden=[16]), Backend("numpy", "float64", seed=3))
    seen = []
    real = evaluation._features
    monkeypatch.setattr(evaluation, "_features", lambda be, *a: (seen.append(be), real(be, *a))[1])
    evaluation.evaluate_gan(gan, 100)
    assert seen and all((be.name, be.dtype) == (gan.be.name, gan.be.dtype) for be in seen)


def test_the_run_machinery_serves_another_training_script(tmp_path):
    """What a second script (e.g. a semi-supervised trainer counting epochs) reuses from tinygan.runs."""
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
