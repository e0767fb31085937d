"""Nothing lost, nothing silent: one run per folder, resume rules, tracing, signals, end of run, the log, the guard."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from run_helpers import SMALL, arrays, fails, same_state
from tinygan.run import runs
from tinygan.commands import train
from tinygan.models.gan import GAN

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


def log_iters(out):
    return [json.loads(line)["iter"] for line in (out / "log.jsonl").read_text().splitlines()]


# --- one run per folder ---

def test_a_second_run_never_replaces_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "20", "--sample-every", "10", "--out", str(out)])
    before = (out / "checkpoint.npz").read_bytes()
    line = fails(train.main, [*SMALL, "--iterations", "5", "--out", str(out)], capsys)
    assert (f"--out {out} already holds another run (checkpoint at iteration 20, log up to iteration 20): it is "
            f"finished: to train it further pass --resume {out / 'checkpoint.npz'} --iterations N (N above 20); to replace it pass "
            "--overwrite") in line  # the run is finished: a bare --resume would have nothing to train
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
    half = out / f".tmp-{int(dead.stdout)}-images" / "3"  # a killed `sample --format folders`'s half-filled folder
    half.mkdir(parents=True)
    (half / "000003.png").write_bytes(b"half a file")
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
