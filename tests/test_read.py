"""tinygan read: image files, class folders, globs and array sets to a CSV, accuracy and confusion matrix."""
import csv
import io
import os

import numpy as np
import pytest
from PIL import Image

from tinygan.__main__ import main
from tinygan.data.augment import experiment_split
from tinygan.data.images import normalize
from tinygan.models.recognizer import load_recognizer, read_digits


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A quick tinygan ssl run's recognizer on the bundled split, and 40 held-out test digits."""
    tmp = tmp_path_factory.mktemp("read")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGAN_OFFLINE", "1")
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        mp.delenv("TINYGAN_DATA", raising=False)
        main(["ssl", "--quick", "--labels", "100", "--epochs", "6", "--out", str(tmp / "ssl")])
        _, _, xt, yt, _ = experiment_split()
    return tmp / "ssl" / "recognizer.npz", xt[:40], yt[:40]


def scans(folder, x, y, flat=False):
    """Digits as dark-on-light 64 x 64 PNG scans with margins, in class folders (or all in one folder)."""
    paths = []
    for i, (img, label) in enumerate(zip(x, y)):
        page = np.full((64, 64), 235, np.uint8)
        page[10:38, 20:48] = 235 - (img.astype(np.int32) * 200 // 255)
        d = folder if flat else folder / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(page).save(d / f"{i:03d}.png")
        paths.append(d / f"{i:03d}.png")
    return paths


def rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_class_folders_give_a_csv_accuracy_and_confusion_matrix(trained, tmp_path, capsys, monkeypatch):
    rec, x, y = trained
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    paths = scans(tmp_path / "scans", x, y)
    (tmp_path / "scans" / "notes.txt").write_text("not an image")
    from tinygan.commands.read import main as read_main
    result = read_main(["--recognizer", str(rec), str(tmp_path / "scans")], prog="tinygan read")
    out, err = capsys.readouterr()
    table = rows(out)
    assert table[0] == ["path", "label", "confidence", "second", "second_confidence"] and len(table) == 41
    assert "1 non-image files skipped" in err and "accuracy" in err and "(rows: true, columns: read)" in err
    # the same readings as read_digits on the same preprocessing
    model, _ = load_recognizer(rec)
    pages = np.stack([np.asarray(Image.open(p), np.float32) / 255 for p in sorted(paths)])
    want = read_digits(model, np.stack([normalize(g) for g in pages]))
    assert [r[1] for r in table[1:]] == want.names
    labels = [int(p.parent.name) for p in sorted(paths)]
    assert result["accuracy"] == pytest.approx(np.mean(want.labels == labels))
    # scans read like the arrays they came from (the preprocessing undoes the page, polarity and margins)
    order = np.argsort([str(p) for p in paths], kind="stable")
    same = np.mean(want.labels == read_digits(model, x[order], normalize=True).labels)
    as_given = np.mean(want.labels == read_digits(model, x[order]).labels)
    assert same >= 0.95 and as_given >= 0.9


def test_csv_file_reject_below_and_a_labels_file(trained, tmp_path, capsys):
    rec, x, y = trained
    scans(tmp_path / "flat", x[:10], y[:10], flat=True)
    (tmp_path / "flat" / "labels.csv").write_text("file,label\n" + "".join(f"{i:03d}.png,{y[i]}\n" for i in range(10)))
    out = tmp_path / "readings.csv"
    from tinygan.commands.read import main as read_main
    result = read_main(["--recognizer", str(rec), str(tmp_path / "flat" / "*.png"), "--csv", str(out),
                        "--reject-below", "0.99", "--labels", str(tmp_path / "flat" / "labels.csv")],
                       prog="tinygan read")
    table = rows(out.read_text())
    assert table[0][-1] == "unsure" and len(table) == 11
    assert all(r[5] == str(int(float(r[2]) < 0.99)) for r in table[1:])
    said = capsys.readouterr().out
    assert "wrote" in said and result["n"] == 10 and "accuracy" in said


def test_an_npz_set_is_read_with_its_labels(trained, tmp_path, capsys):
    rec, x, y = trained
    np.savez(tmp_path / "set.npz", x=x, y=y)
    from tinygan.commands.read import main as read_main
    result = read_main(["--recognizer", str(rec), str(tmp_path / "set.npz")], prog="tinygan read")
    model, _ = load_recognizer(rec)
    assert result["accuracy"] == pytest.approx(np.mean(read_digits(model, x).labels == y))
    assert len(rows(capsys.readouterr().out)) == 41


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "labels.csv").write_text("000.png,Q\n"), "not one of 0, 1"),
    (lambda d: (d / "labels.csv").write_text("nothere.png,3\n"), "names nothere.png, which is not a file"),
])
def test_bad_labels_are_one_line_and_exit_2(trained, tmp_path, capsys, make, words):
    rec, x, y = trained
    scans(tmp_path / "flat", x[:2], y[:2], flat=True)
    make(tmp_path / "flat")
    from tinygan.commands.read import main as read_main
    with pytest.raises(SystemExit) as e:
        read_main(["--recognizer", str(rec), str(tmp_path / "flat"), "--labels", str(tmp_path / "flat" / "labels.csv")],
                  prog="tinygan read")
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_recognizer_or_path_is_one_line(trained, tmp_path, capsys):
    rec, _, _ = trained
    from tinygan.commands.read import main as read_main
    for argv, words in ((["--recognizer", str(tmp_path / "no.npz"), str(tmp_path)], "no such recognizer file"),
                        (["--recognizer", str(rec), str(tmp_path / "none" / "*.png")], "no file matches")):
        with pytest.raises(SystemExit) as e:
            read_main(argv, prog="tinygan read")
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_an_idx_folder_is_read_with_its_labels(trained, capsys):
    rec, _, _ = trained
    from tinygan.commands.read import main as read_main
    from tinygan.data.mnist import bundled_dir, read_idx
    result = read_main(["--recognizer", str(rec), bundled_dir()], prog="tinygan read")
    x = read_idx(os.path.join(bundled_dir(), "t10k-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(bundled_dir(), "t10k-labels-idx1-ubyte.gz"))
    model, _ = load_recognizer(rec)
    assert result["n"] == 10000 and result["accuracy"] == pytest.approx(np.mean(read_digits(model, x).labels == y))
    out = capsys.readouterr().out
    assert out.count("\n") == 10001 and "#test9999," in out
