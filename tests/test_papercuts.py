"""What a newcomer meets: resume keeps its settings and finishes what it started, printed commands paste, --help
shows defaults, messages say the whole reason and name the command as it was run; README's sequence runs."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from run_helpers import SMALL, arrays, fails
from tinygan.commands import evaluate, sample, ssl, train
from tinygan.data import mnist
from tinygan.models.gan import GAN

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


def log_iters(out):
    return [r["iter"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "d_loss" in r]


def signal_at(monkeypatch, iteration, sig=signal.SIGINT):
    """Make GAN.step deliver sig to this process right after the given iteration (as a Ctrl-C there would)."""
    real = GAN.step

    def step(self, *args):
        stats = real(self, *args)
        if self.iteration == iteration:
            os.kill(os.getpid(), sig)
        return stats
    monkeypatch.setattr(GAN, "step", step)


# --- resume keeps the run's settings, and finishes what a stop left undone ---

def test_resume_keeps_the_interval_settings(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run with spaces"
    signal_at(monkeypatch, 7)
    with pytest.raises(SystemExit) as e:
        train.main([*SMALL, "--iterations", "20", "--checkpoint-every", "3", "--sample-every", "5", "--log-every", "2",
                    "--out", str(out)])
    assert e.value.code == 130
    monkeypatch.undo()
    line = [ln for ln in capsys.readouterr().out.splitlines() if "To continue:" in ln][0]
    hint = shlex.split(line.split("To continue: ", 1)[1])  # pastes as it is, though the path has spaces
    assert hint[:4] == ["python", "examples/train_mnist.py", "--resume", str(out / "checkpoint.npz")]
    assert " ".join(hint[4:]) == "--checkpoint-every 3 --sample-every 5 --log-every 2"
    train.main(hint[2:4])  # the resume as the hint gives it, without the intervals: the checkpoint has them
    assert log_iters(out) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15, 16, 18, 20]
    assert {"samples_000015.png", "samples_000020.png"} <= {p.name for p in out.iterdir()}
    assert json.loads(str(arrays(out / "checkpoint.npz")["run"]))["checkpoint_every"] == 3


def test_an_interval_given_on_resume_wins(tmp_path):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "4", "--log-every", "2", "--out", str(out)])
    train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "10", "--log-every", "5"])
    assert log_iters(out) == [2, 4, 5, 10]


def test_a_stop_in_the_last_step_finishes_on_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    signal_at(monkeypatch, 10)
    with pytest.raises(SystemExit):
        train.main([*SMALL, "--iterations", "10", "--eval", "--eval-n", "100", "--out", str(out)])
    monkeypatch.undo()
    hint = capsys.readouterr().out.split("To continue: ", 1)[1].strip()
    assert not (out / "samples_000010.png").exists()  # the end-of-run work was left undone
    train.main(shlex.split(hint)[2:] + ["--eval", "--eval-n", "100"])
    printed = capsys.readouterr().out
    assert "finishing the end-of-run work" in printed and "done: 0 iterations (10 → 10)" in printed
    assert (out / "samples_000010.png").exists()
    assert any("eval" in json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines())
    line = fails(train.main, shlex.split(hint)[2:], capsys)  # now it is finished: nothing to train, as before
    assert "nothing to train" in line


def test_ctrl_c_during_the_final_evaluation_completes_the_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = train.evaluate_gan

    def evaluate_gan(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the final evaluation runs
        return real(*a, **k)
    monkeypatch.setattr(train, "evaluate_gan", evaluate_gan)
    train.main([*SMALL, "--iterations", "6", "--eval", "--eval-n", "100", "--out", str(out)])  # no SystemExit
    printed = capsys.readouterr().out
    assert "done: 6 iterations (0 → 6)" in printed and "SIGINT came during the end-of-run work" in printed
    assert "To continue" not in printed  # no resume hint that would then say "nothing to train"


def test_done_line_on_a_resume(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    train.main(["--resume", str(out / "checkpoint.npz"), "--iterations", "1205"])
    assert re.search(r"done: 1,200 iterations \(5 → 1,205\) in \d+s", capsys.readouterr().out)


# --- messages ---

def test_nan_advice_matches_the_resume_rules_and_no_raw_warnings(tmp_path, capsys):
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as e:
        warnings.simplefilter("always")
        train.main(["--preset", "deep", "--batch-size", "16", "--iterations", "40", "--lr", "1e6", "--log-every", "10",
                    "--out", str(out)])
    assert "try a lower --lr" not in e.value.code and "start a new run" in e.value.code, e.value.code
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "RuntimeWarning" not in capsys.readouterr().err


@pytest.mark.parametrize("command, flag, default", [(train, "--sample-every", "1000"), (train, "--seed", "0"),
                                                     (train, "--eval-n", "10000"), (sample, "--n", "64"),
                                                     (sample, "--max-hours", "12"), (evaluate, "--n", "10000"),
                                                     (ssl, "--labels", "100"), (ssl, "--sample-every", "10")])
def test_help_shows_defaults(command, flag, default, capsys):
    with pytest.raises(SystemExit):
        command.main(["--help"])
    text = " ".join(capsys.readouterr().out.split("\noptions:", 1)[1].split())  # past the usage line
    entry = text.split(f" {flag} ", 1)[1][:160]  # its help text (and perhaps the next flag's start)
    assert f"default {default}" in entry, entry


def test_printed_commands_paste_with_spaces(tmp_path, capsys):
    out = tmp_path / "my runs" / "a b"
    train.main([*SMALL, "--conditional", "--iterations", "3", "--out", str(out)], prog="tinygan train")
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("generate digits:")][0]
    words = shlex.split(line.split(": ", 1)[1])
    assert words == ["tinygan", "sample", "--checkpoint", str(out / "checkpoint.npz"), "--n", "64"]
    sample.main(words[2:] + ["--n", "20", "--format", "idx"], prog="tinygan sample")
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("train on them:")][0]
    assert shlex.split(line.split(": ", 1)[1]) == ["tinygan", "train", "--data", str(out / "samples")]


def test_the_whole_download_reason_is_printed(monkeypatch, capsys):
    monkeypatch.delenv("TINYGAN_OFFLINE")
    why = ("could not download train-images-idx3-ubyte.gz from any mirror (https://a.example/: timed out after 20 s;"
           " https://b.example/: HTTP 503)")

    def fail(*a, **k):
        raise mnist.DataNotFoundError(why)
    monkeypatch.setattr(mnist, "download_mnist", fail)
    mnist.load_mnist("train")
    err = capsys.readouterr().err
    assert why in err and "..." not in err


def test_evaluate_checks_json_before_the_work_and_shows_progress(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "3", "--out", str(out)])
    line = fails(evaluate.main, ["--checkpoint", str(out / "checkpoint.npz"), "--n", "100",
                                 "--json", str(tmp_path / "no such folder" / "e.json")], capsys)
    assert "argument --json: the folder" in line and "does not exist" in line
    evaluate.main(["--checkpoint", str(out / "checkpoint.npz"), "--n", "100", "--json", str(tmp_path / "e.json")])
    captured = capsys.readouterr()
    assert "drawing 100 samples" in captured.err and "classifying them" in captured.err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["test_score"] is True and result["reference"] == "2,000 held-out digits of the bundled split"


def test_evaluate_will_not_call_it_a_test_score_when_unknown(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*SMALL, "--iterations", "3", "--out", str(out)])
    a = arrays(out / "checkpoint.npz")
    config = json.loads(str(a["config"]))
    assert config["data"]["origin"] == "bundled-train-part"
    del config["data"]  # a checkpoint from before runs recorded what they trained on
    a["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "old.npz", **a)
    capsys.readouterr()
    r = evaluate.main(["--checkpoint", str(tmp_path / "old.npz"), "--n", "100"])
    assert r["test_score"] is False and "NOT a test score" in capsys.readouterr().out


def test_mix_ups_name_the_command_as_it_was_run(tmp_path, capsys):
    gan_run, ssl_run = tmp_path / "gan", tmp_path / "ssl"
    train.main([*SMALL, "--iterations", "3", "--out", str(gan_run)])
    ssl.main(["--quick", "--out", str(ssl_run)])
    line = fails(lambda a: ssl.main(a, prog="tinygan ssl"), ["--resume", str(gan_run / "checkpoint.npz")], capsys)
    assert "resume it with tinygan train" in line and ".py" not in line.split("resume it with")[1]
    line = fails(lambda a: sample.main(a, prog="tinygan sample"), ["--checkpoint", str(ssl_run / "checkpoint.npz")],
                 capsys)
    assert "use it with tinygan ssl" in line
    line = fails(sample.main, ["--checkpoint", str(ssl_run / "checkpoint.npz")], capsys)
    assert "use it with python examples/train_ssl.py" in line


def test_one_skip_line_per_reason(tmp_path):
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n@pytest.mark.parametrize('i', range(5))\ndef test_a(i):\n    pytest.skip('CuPy is absent')\n"
        "def test_b():\n    pytest.skip('no GPU')\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "-p", "conftest",
                        "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
                       timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if "SKIPPED" in ln]
    assert lines == ["SKIPPED 5 tests: CuPy is absent", "SKIPPED 1 test: no GPU"], r.stdout


def test_readme_sequence_runs_top_to_bottom(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = text.split("After `pip install .`", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    quick = {"train": ["--iterations", "200"], "sample": ["--n", "6000"], "evaluate": ["--n", "1000"], "report": [],
             "ssl": ["--quick"], "read": [], "export": []}
    note = " ".join(text.split("After `pip install .`", 1)[1].split("```", 2)[2].split("\n\n", 2)[1].split())
    assert ("add `--iterations 200` to both `train` commands, `--n 6000` to `sample` and `--n 1000` to "
            "`evaluate`") in note
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    (tmp_path / "scans").mkdir()  # the user's scans that `tinygan read` reads: a few digits of the bundled split
    for i, digit in enumerate(mnist.load_mnist("test", verbose=False)[0][:3]):
        Image.fromarray(255 - digit).save(tmp_path / "scans" / f"scan{i}.png")

    def run(words):
        return subprocess.run([sys.executable, "-m", *words], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
    commands = [shlex.split(ln.split("#")[0]) for ln in block.splitlines() if ln.strip()]
    for words in commands:
        assert words[0] == "tinygan"
        r = run(words + quick[words[1]])
        assert r.returncode == 0 and "Traceback" not in r.stderr, (words, r.stdout[-2000:], r.stderr[-2000:])
    again = run(commands[0] + quick["train"])  # run again: refused, saying how to go on
    assert again.returncode == 2 and "--resume runs/cond/checkpoint.npz --iterations N (N above 200)" in again.stderr


def test_ssl_resume_keeps_its_sample_interval(tmp_path, monkeypatch):
    out, titles = tmp_path / "ssl", []
    ssl.main(["--quick", "--epochs", "2", "--sample-every", "1", "--out", str(out)])
    monkeypatch.setattr(ssl, "save_grid", lambda *a, **k: titles.append(k["title"]))
    ssl.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "4"])
    assert titles == ["G after epoch 3", "G after epoch 4"]  # every epoch, as the run was started
    assert json.loads(str(arrays(out / "checkpoint.npz")["run"])) == {"sample_every": 1}


def test_ssl_done_line_says_which_epochs_this_run_trained(tmp_path, capsys):
    from tinygan.commands import ssl
    out = tmp_path / "s"
    ssl.main(["--quick", "--epochs", "1", "--out", str(out)])
    assert "done: 1 epochs (0 → 1)" in capsys.readouterr().out
    ssl.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "3"])
    assert "done: 2 epochs (1 → 3)" in capsys.readouterr().out
