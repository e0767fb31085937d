"""Recognizer files checked like checkpoints, read_digits checking its images, and `tinygan export`."""
import io
import json
import zipfile

import numpy as np
import pytest

import tinygan as tg
from tinygan.models.recognizer import RecognizerError, export_recognizer, load_recognizer, read_digits
from tinygan.models.ssl import SSLGAN, make_ssl_config


@pytest.fixture
def rec(tmp_path):
    """A tiny exported recognizer (784 -> 16 -> 10) and its file."""
    gan = SSLGAN(make_ssl_config(d_hidden=[16], g_hidden=[8]), tg.Backend("numpy", "float32", seed=0))
    path = tmp_path / "recognizer.npz"
    export_recognizer(path, gan, {"labels": 100})
    return path


def members(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def write(path, arrays, extra=None, compress=zipfile.ZIP_STORED):
    """An .npz written by hand, so a member can lie about itself."""
    with zipfile.ZipFile(path, "w", compress) as zf:
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(v), allow_pickle=False)
            zf.writestr(k + ".npy", buf.getvalue() + (extra or {}).get(k, b""))
    return path


def test_an_exported_recognizer_loads_with_its_sizes_and_classes(rec):
    model, info = load_recognizer(rec)
    assert info["sizes"] == [784, 16, 10] and model.classes == [str(d) for d in range(10)]
    assert model.image == (28, 28) and info["labels"] == 100


@pytest.mark.parametrize("change, words", [
    (lambda a: a["0.W"].__setitem__((0, 0), np.nan), "holds NaN or inf"),
    (lambda a: a.__setitem__("0.W", a["0.W"].astype(np.int8)), "holds int8, it must be float32 or float64"),
    (lambda a: a.__setitem__("2.W", a["2.W"][:, :5]), "has shape (16, 5), its sizes say (16, 10)"),
    (lambda a: a.__setitem__("info", np.array(json.dumps({**json.loads(str(a["info"])), "classes": list("abcde")}))),
     "names 5 classes but the last layer has 10 outputs"),
    (lambda a: a.__setitem__("info", np.array(json.dumps({"sizes": [784, 20000, 20000, 10]}))),
     "more than the 50000000 a recognizer may have"),
    (lambda a: a.__setitem__("info", np.array(json.dumps({"sizes": [784, 100000, 10]}))), "outside 1..65536"),
    (lambda a: a.__setitem__("extra", np.zeros(3)), "unexpected members ['extra.npy']"),
    (lambda a: a.pop("2.b"), "member '2.b.npy' is missing"),
    (lambda a: a.__setitem__("info", np.array("{not json")), "not a tinygan recognizer"),
])
def test_a_broken_recognizer_is_one_clear_error(rec, tmp_path, change, words):
    arrays = members(rec)
    change(arrays)
    bad = write(tmp_path / "bad.npz", arrays)
    with pytest.raises(RecognizerError) as e:
        load_recognizer(bad)
    assert words in str(e.value) and str(bad) in str(e.value)


def test_huge_sizes_are_refused_before_anything_is_allocated(rec, tmp_path, monkeypatch):
    # a small file whose sizes ask for 3.2 GB: refused from the info alone, no member read
    arrays = members(rec)
    arrays["info"] = np.array(json.dumps({"sizes": [784, 20000, 20000, 10]}))
    bad = write(tmp_path / "bad.npz", arrays)
    read = []
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda self, *a: read.append(self.name) or b"")
    with pytest.raises(RecognizerError):
        load_recognizer(bad)
    assert all(n == "info.npy" for n in read)


def test_a_zip_bomb_member_is_refused_by_its_declared_size(rec, tmp_path):
    arrays = members(rec)
    bad = write(tmp_path / "bomb.npz", arrays, extra={"0.W": bytes(50_000_000)}, compress=zipfile.ZIP_DEFLATED)
    assert bad.stat().st_size < 1_000_000
    with pytest.raises(RecognizerError, match="unpacks to 500"):
        load_recognizer(bad)


def test_read_digits_returns_labels_confidences_and_names(rec):
    model, _ = load_recognizer(rec)
    x = np.random.default_rng(0).integers(0, 50, (7, 28, 28), dtype=np.uint8)
    r = read_digits(model, x)
    assert r.labels.shape == (7,) and r.names == [str(c) for c in r.labels]
    assert np.all(r.confidences >= r.second_confidences) and np.all(r.second != r.labels)
    assert np.all((r.confidences > 0) & (r.confidences <= 1))
    same = read_digits(model, (x.astype(np.float32) / 255).reshape(7, 784))  # uint8 is scaled by 1/255
    assert np.array_equal(same.labels, r.labels) and np.allclose(same.confidences, r.confidences, atol=1e-6)


@pytest.mark.parametrize("images, words", [
    (np.zeros((4, 28, 28, 3), np.float32), "have 3 channels"),
    (np.zeros((49, 32, 32), np.float32), "(49, 32, 32): this recognizer reads (N, 28, 28)"),
    (np.zeros((4, 700), np.float32), "(4, 700): this recognizer reads"),
    (np.full((2, 28, 28), np.nan, np.float32), "image 0 holds NaN or inf"),
    (np.linspace(-1, 1, 2 * 784, dtype=np.float32).reshape(2, 28, 28), "for [-1, 1] pass (x + 1) / 2"),
    (np.zeros((2, 28, 28), np.int16), "integer pixels must be uint8"),
    (np.zeros((0, 28, 28), np.float32), "N >= 1"),
    (np.zeros((2, 28, 28), bool), "of type bool"),
])
def test_read_digits_refuses_what_it_would_misread(rec, images, words):
    model, _ = load_recognizer(rec)
    with pytest.raises(RecognizerError) as e:
        read_digits(model, images)
    assert words in str(e.value)
    assert isinstance(e.value, ValueError)


def test_dark_ink_on_light_paper_warns_and_normalize_fixes_it(rec):
    model, _ = load_recognizer(rec)
    ink = np.zeros((3, 28, 28), np.float32)
    ink[:, 6:22, 12:16] = 1  # a bright stroke on black: MNIST's way
    with pytest.warns(UserWarning, match="dark ink on light paper"):
        read_digits(model, 1 - ink)
    flipped = read_digits(model, 1 - ink, normalize=True)
    assert np.array_equal(flipped.labels, read_digits(model, ink, normalize=True).labels)
    rgb = np.repeat((1 - ink)[..., None], 3, axis=3)  # colour input is converted when normalising
    assert np.array_equal(read_digits(model, rgb, normalize=True).labels, flipped.labels)


def test_export_command_writes_the_recognizer_of_a_checkpoint(tmp_path, capsys, offline):
    from tinygan.__main__ import main
    out = tmp_path / "ssl"
    main(["ssl", "--quick", "--labels", "20", "--out", str(out)])
    main(["export", "--checkpoint", str(out / "checkpoint.npz"), "--out", str(tmp_path / "again.npz")])
    assert "wrote" in capsys.readouterr().out
    a, b = members(out / "recognizer.npz"), members(tmp_path / "again.npz")
    for k in a:
        if k != "info":
            assert np.array_equal(a[k], b[k]), k
    assert json.loads(str(b["info"]))["iteration"] == 12
    with pytest.raises(SystemExit) as e:
        main(["export", "--checkpoint", str(tmp_path / "again.npz")])
    assert e.value.code == 2 and "not a tinygan checkpoint" in capsys.readouterr().err


def test_every_checkpoint_has_its_recognizer_so_a_kill_never_loses_it(tmp_path, monkeypatch, offline):
    import os
    import signal
    from tinygan.__main__ import main
    step = SSLGAN.step

    def killed(self, *a):  # a crash in epoch 3, after epoch 2's checkpoint: as kill -9 would leave the folder
        if self.iteration == 9:
            raise RuntimeError("killed")
        return step(self, *a)
    monkeypatch.setattr(SSLGAN, "step", killed)
    with pytest.raises(RuntimeError):
        main(["ssl", "--quick", "--labels", "20", "--out", str(tmp_path / "a")])
    model, info = load_recognizer(tmp_path / "a" / "recognizer.npz")
    assert info["iteration"] == 8 and info["epochs"] == 2 and 0 <= info["test_error"] <= 1

    def interrupted(self, *a):  # Ctrl-C mid-epoch: the checkpoint and its recognizer both at step 6
        stats = step(self, *a)
        if self.iteration == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return stats
    monkeypatch.setattr(SSLGAN, "step", interrupted)
    with pytest.raises(SystemExit):
        main(["ssl", "--quick", "--labels", "20", "--out", str(tmp_path / "b")])
    assert load_recognizer(tmp_path / "b" / "recognizer.npz")[1]["iteration"] == 6
    assert int(members(tmp_path / "b" / "checkpoint.npz")["iteration"]) == 6
