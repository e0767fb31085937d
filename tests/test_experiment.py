"""The few-label experiment's pieces: one supervised loop, balanced pseudo-labels, self-training, the CAS score."""
import numpy as np

import tinygan as tg
from tinygan.measure import experiment
from tinygan.models import classifier
from tinygan.measure.supervised import classification_accuracy_score, fit, shuffled


def blobs(n, seed=0):
    """Ten well-separated digit-like classes: class c lights up its own band of pixels (uint8 images)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for c in range(10):
        x[y == c, 2 * c + 4:2 * c + 7, 4:24] = 250
    return x, y


def test_fit_learns_and_the_cas_score_reads_real_test_digits():
    x, y = blobs(600)
    xt, yt = blobs(300, seed=1)
    be = tg.Backend("numpy", "float32", seed=0)
    assert classification_accuracy_score(x, y, xt, yt, be, epochs=3) > 0.95
    wrong = (y + 1) % 10  # trained on wrong labels, it must score near zero on the real test labels
    assert classification_accuracy_score(x, wrong, xt, yt, be, epochs=3) < 0.05


def test_fit_follows_a_cosine_schedule_and_draws_from_the_given_batches():
    x, y = blobs(200)
    model = experiment.build_mlp(0)
    seen = []

    def draw(rng):
        batch = shuffled(x, y, 16)(rng)
        seen.append(batch[0].max())
        return batch
    fit(model, draw, 5, lr=1e-3, rng=np.random.default_rng(0))
    assert len(seen) == 5 and max(seen) <= 1.0, "uint8 pixels arrive as floats in [0, 1]"
    assert not model.layers[2].training, "fit returns the model in evaluation mode"


def test_pseudo_labels_are_confident_and_balanced():
    x, y = blobs(2000)
    model = experiment.train_arm("real", {"real": (x[:200], y[:200])}, 300, seed=0)
    keep, guess = experiment.pseudo_labels(model, x, threshold=0.9)
    counts = np.bincount(guess, minlength=10)
    assert len(keep) > 0 and (counts == counts[0]).all(), "the same number of each digit"
    assert (guess == y[keep]).mean() > 0.95
    probs = classifier.predict(model, x[keep].astype(np.float32) / 255)[0]
    assert probs.max(axis=1).min() >= 0.9


def test_self_training_uses_the_unlabelled_digits():
    x, y = blobs(3000)
    real = (x[:50], y[:50])
    model, history = experiment.self_train(real, x, 300, seed=0, rounds=2, threshold=0.8)
    assert len(history) == 2 and history[0] > 100
    xt, yt = blobs(500, seed=2)
    assert experiment.evaluate(model, xt, yt) > 0.9


def test_batches_mix_the_pools_as_the_arm_says():
    rng = np.random.default_rng(0)
    real = (np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.int64))
    fake = (np.ones((5, 28, 28), np.float32), np.ones(5, np.int64))
    x, labels = experiment.batch_of(experiment.MIX["gan"], {"real": real, "gan": fake}, rng)
    assert x.shape == (64, 784) and labels.tolist() == [0] * 32 + [1] * 32
    assert x[:32].max() == 0 and x[32:].min() == 1


def test_evaluate_reports_the_cas_of_a_conditional_checkpoint(tmp_path, monkeypatch, capsys):
    import pytest
    from tinygan.commands import evaluate, train
    monkeypatch.setenv("TINYGAN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    small = ["--iterations", "20", "--g-hidden", "16", "--d-hidden", "16", "--batch-size", "16"]
    train.main([*small, "--preset", "deep", "--conditional", "--out", str(tmp_path / "cond")])
    result = evaluate.main(["--checkpoint", str(tmp_path / "cond" / "checkpoint.npz"), "--n", "200", "--cas", "200",
                            "--json", str(tmp_path / "eval.json")])
    cas = result["cas"]
    assert cas["n"] == 200 and cas["test"] == 5000 and 0 <= cas["synthetic"] <= 1
    assert cas["real"] > 0.6, "200 real digits train the classifier well beyond chance"
    assert "CAS: trained on 200 generated digits" in capsys.readouterr().out
    train.main([*small, "--out", str(tmp_path / "plain")])
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--checkpoint", str(tmp_path / "plain" / "checkpoint.npz"), "--cas", "200"])
    assert e.value.code == 2 and "must be conditional" in capsys.readouterr().err


def test_judge_ranks_arms_and_names_a_lone_arm_without_ranking_it():
    results = {"10": {"real": [0.78, 0.77, 0.79], "ssl": [0.988, 0.987, 0.989]}}
    line = experiment.judge(results, [10], 3, ["real", "ssl"])[0]
    assert line == ("n=10: (e) semi-supervised GAN wins, 20.80 pts ahead of (a) real only (= 20.8x the larger std, "
                    "1.00 pts); ssl +20.80 +- 0.52 pts vs real (better)")
    assert experiment.judge(results, [10], 3, ["ssl"]) == ["n=10: (e) semi-supervised GAN 98.80% (the only arm run)"]
