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
    (["--validation", "-5"], "--validation: -5 must be >= 0"),
    (["--validation", "2500"], "--validation 2500: holds out at least half"),
    (["--g-lr", "-0.1"], "--g-lr: '-0.1' must be a positive"),
    (["--decay-fraction", "1.5"], "--decay-fraction: 1.5 must be in [0, 1]"),
    (["--warmup-epochs", "3"], "--warmup-epochs 3: must be below the 3 epochs"),
    (["--warmup-epochs", "-1"], "--warmup-epochs: -1 must be >= 0"),
    (["--entropy", "-1"], "--entropy: -1 must be >= 0"),
    (["--balance", "-0.5"], "--balance: -0.5 must be >= 0"),
    (["--consistency", "-2"], "--consistency: -2 must be >= 0"),
    (["--pull-away", "-1"], "--pull-away: -1 must be >= 0"),
    (["--pseudo-threshold", "0"], "--pseudo-threshold: 0 must be in (0, 1]"),
    (["--pseudo-threshold", "1.2"], "--pseudo-threshold: 1.2 must be in (0, 1]"),
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


# --- the cures for few labels (docs/ssl.md, Options) ---

def test_validation_and_excluded_labelled_rows_are_disjoint():
    from tinygan.commands.ssl import split_rows
    from tinygan.models.ssl import make_ssl_config
    y = np.random.default_rng(0).integers(0, 10, 3000)
    for exclude in (False, True):
        pick, unl, val = split_rows(y, make_ssl_config(labels=50, validation=400, exclude_labelled=exclude))
        assert np.array_equal(val, np.arange(2600, 3000)), "the LAST N digits are held out"
        assert not set(val) & set(pick) and not set(val) & set(unl), "validation digits are never trained on"
        assert len(pick) == 50 and np.array_equal(np.bincount(y[pick], minlength=10), [5] * 10)
        assert bool(set(pick) & set(unl)) != exclude, "labelled digits are in the pool unless excluded"
        assert len(unl) == 2600 - 50 * exclude
    off, _, none = split_rows(y, make_ssl_config(labels=50))
    assert len(none) == 0 and np.array_equal(off, split_rows(y, make_ssl_config(labels=50, validation=0))[0])


def test_a_validation_run_reports_val_err_and_refuses_a_changed_flag(tmp_path, capsys):
    out = tmp_path / "v"
    train_ssl.main([*QUICK, "--validation", "500", "--epochs", "2", "--out", str(out)])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(0 <= r["val_err"] <= 1 and 0 <= r["val_err_live"] <= 1 for r in records)
    assert "validation error" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["validation"] == 500 and config["exclude_labelled"] is True  # the few-label default at 20 labels
    for flags in (["--validation", "100"], ["--no-exclude-labelled"], ["--entropy", "0.5"], ["--pull-away", "1"],
                  ["--decay-fraction", "0.5"], ["--adam-eps-inside"], ["--g-lr", "0.01"], ["--warmup-epochs", "1"]):
        with pytest.raises(SystemExit) as e:
            train_ssl.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "3", *flags])
        assert e.value.code == 2 and f"{flags[0].replace('--no-', '--')} cannot change a resumed run" in capsys.readouterr().err


def test_an_older_checkpoint_without_the_new_settings_still_loads(tmp_path):
    out = tmp_path / "old"
    train_ssl.main([*QUICK, "--epochs", "1", "--out", str(out)])
    a = arrays(out / "checkpoint.npz")
    config = json.loads(str(a["config"]))
    from tinygan.models.checkpoint import SSL_FIELDS
    added = [k for k, v in SSL_FIELDS.items() if len(v) == 3]
    assert {"validation", "entropy_weight", "pseudo_threshold"} <= set(added)
    a["config"] = np.array(json.dumps({k: v for k, v in config.items() if k not in added}))
    np.savez(out / "checkpoint.npz", **a)
    train_ssl.main(["--resume", str(out / "checkpoint.npz"), "--epochs", "2"])
    assert json.loads((out / "config.json").read_text())["validation"] == 0


def test_resume_is_bit_identical_with_the_cures_on(tmp_path, monkeypatch, capsys):
    """A run with entropy, balance, consistency, lr decay and a warm-up, cut by a signal inside epoch 2 and resumed,
    ends bit for bit where the uninterrupted run does."""
    from tinygan.models.ssl import SSLGAN
    cures = [*QUICK, "--entropy", "0.5", "--balance", "1", "--consistency", "0.3", "--decay-fraction", "0.5",
             "--warmup-epochs", "1", "--adam-eps-inside", "--g-lr", "0.002", "--validation", "300",
             "--exclude-labelled", "--pseudo-threshold", "0.1"]
    train_ssl.main([*cures, "--out", str(tmp_path / "full")])
    with np.load(tmp_path / "full" / "pseudo.npz") as f:  # the last epoch's self-training labels
        assert int(f["epoch"]) == 2 and len(f["rows"]) > 0 and np.all(np.bincount(f["labels"]) == len(f["rows"]) // 10)
    step = SSLGAN.step

    def interrupted(self, *a):
        stats = step(self, *a)
        if self.iteration == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return stats
    monkeypatch.setattr(SSLGAN, "step", interrupted)
    with pytest.raises(SystemExit):
        train_ssl.main([*cures, "--out", str(tmp_path / "cut")])
    monkeypatch.setattr(SSLGAN, "step", step)
    train_ssl.main(["--resume", str(tmp_path / "cut" / "checkpoint.npz")])
    full, resumed = arrays(tmp_path / "full" / "checkpoint.npz"), arrays(tmp_path / "cut" / "checkpoint.npz")
    for k in full:
        assert np.array_equal(full[k], resumed[k]), f"{k} differs after resume"
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert log[0]["loss_gen"] == 0 and log[1]["loss_gen"] > 0, "epoch 1 is the warm-up, G idle"
    assert {"loss_ent", "loss_bal", "loss_con", "val_err"} <= set(log[1])


def test_pseudo_labels_are_confident_balanced_saved_and_read_back(tmp_path):
    from tinygan.commands.ssl import pseudo_labelled
    from tinygan.models.ssl import SSLGAN, make_ssl_config
    from tinygan.run.cli import UsageError
    be = tg.Backend("numpy", "float32", seed=0)
    gan = SSLGAN(make_ssl_config(d_hidden=[8], g_hidden=[4], latent_dim=2, pseudo_threshold=0.9), be)
    images = be.asarray(np.random.default_rng(0).random((300, 784), dtype=np.float32))
    probs = np.full((300, 10), 0.01, np.float32)
    truth = np.arange(300) % 10
    conf = np.where(np.arange(300) % 7 == 0, 0.5, 0.95)  # every 7th digit is unsure
    conf[truth == 3] = np.where(np.arange(300)[truth == 3] < 100, 0.95, 0.5)  # digit 3: only 4 sure ones
    probs[np.arange(300), truth] = conf
    pool = np.arange(50, 300)  # the first 50 are not in the pool
    seen = []
    gan.probabilities = lambda x: seen.append(np.array(x)) or be.asarray(probs[pool])  # D's reading, made up
    path = tmp_path / "pseudo.npz"
    rows, labels = pseudo_labelled(gan, images, pool, 4, str(path), fresh=True)
    k = min(int(((truth[pool] == c) & (conf[pool] >= 0.9)).sum()) for c in range(10))
    assert len(rows) == 10 * k and np.array_equal(np.bincount(labels, minlength=10), [k] * 10), "balanced"
    assert set(rows) <= set(pool) and np.array_equal(labels, truth[rows]) and (conf[rows] >= 0.9).all()
    assert np.array_equal(seen[0], np.asarray(images)[pool]), "D reads the pool's images"
    again = pseudo_labelled(gan, images, pool, 4, str(path), fresh=False)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], labels), "a resumed epoch reads them back"
    with pytest.raises(UsageError, match="not of the resumed epoch 6"):
        pseudo_labelled(gan, images, pool, 5, str(path), fresh=False)


def test_few_label_defaults_apply_below_10_labels_per_class_unless_chosen(tmp_path):
    from tinygan.models.ssl import FEW_LABELS
    def config(*flags):
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        train_ssl.main(["--quick", "--epochs", "1", "--out", str(out), *flags])
        return json.loads((out / "config.json").read_text())
    few = config("--labels", "20")
    assert {k: few[k] for k in FEW_LABELS} == FEW_LABELS and FEW_LABELS["entropy_weight"] > 0
    many = config("--labels", "100")  # 10 per class: the recipe alone
    assert many["entropy_weight"] == many["balance_weight"] == many["consistency_weight"] == 0
    assert many["exclude_labelled"] is False
    chosen = config("--labels", "20", "--entropy", "0", "--no-exclude-labelled")
    assert chosen["entropy_weight"] == 0 and chosen["exclude_labelled"] is False
    assert chosen["balance_weight"] == FEW_LABELS["balance_weight"], "the flags not given keep the few-label default"
