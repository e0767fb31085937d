"""Your own data end to end: 26 letters rendered from matplotlib's fonts train `tinygan ssl` and are read back by
`tinygan read`; labelled and unlabelled folders; the checkpoint's record of its data on resume."""
import csv
import io
import json
import os
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tinygan.__main__ import main
from tinygan.models.recognizer import load_recognizer

LETTERS = string.ascii_lowercase


def font_files():
    from matplotlib import font_manager
    fonts = sorted(f for f in font_manager.findSystemFonts(fontpaths=[os.path.join(
        os.path.dirname(font_manager.__file__), "mpl-data", "fonts", "ttf")]) if "DejaVu" in f and "Display" not in f)
    return fonts[:4]


def render(root, per_class, seed=0, classes=LETTERS, flat=False):
    """Letters as dark-on-light 40 x 40 PNGs with jitter (font, size, place, angle): root/<letter>/*.png."""
    rng, fonts = np.random.default_rng(seed), font_files()
    for c in classes:
        d = root if flat else root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            font = ImageFont.truetype(fonts[rng.integers(len(fonts))], int(rng.integers(18, 28)))
            im = Image.new("L", (40, 40), 255)
            ImageDraw.Draw(im).text((int(rng.integers(4, 14)), int(rng.integers(0, 8))), c, fill=0, font=font)
            im.rotate(float(rng.uniform(-12, 12)), fillcolor=255).save(d / f"{c}{i:03d}.png")
    return root


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TINYGAN_OFFLINE", "1")
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    return tmp_path


def test_26_letters_train_ssl_and_are_read_back(env, capsys):
    letters = render(env / "letters", 24)
    out = env / "run"
    main(["ssl", "--quick", "--data", str(letters), "--labels", "52", "--out", str(out)])
    model, info = load_recognizer(out / "recognizer.npz")
    assert info["sizes"] == [784, 64, 32, 26] and info["classes"] == list(LETTERS)
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == list(LETTERS) and config["data"]["shape"] == [520, 28, 28]
    capsys.readouterr()
    from tinygan.commands.read import main as read_main
    result = read_main(["--recognizer", str(out / "recognizer.npz"), str(letters), "--csv", str(env / "r.csv")],
                       prog="tinygan read")
    rows = list(csv.reader(io.StringIO((env / "r.csv").read_text())))
    assert len(rows) == 1 + 26 * 24 and {r[1] for r in rows[1:]} <= set(LETTERS)
    assert result["n"] == 26 * 24 and 0 <= result["accuracy"] <= 1
    assert "(rows: true, columns: read)" in capsys.readouterr().out


def test_labelled_and_unlabelled_folders_or_a_labels_file(env, capsys):
    lab = render(env / "lab", 3, seed=1, classes="abc")
    unl = render(env / "unl", 30, seed=2, classes="abc", flat=True)
    test = render(env / "test", 5, seed=3, classes="abc")
    main(["ssl", "--quick", "--labelled", str(lab), "--unlabelled", str(unl), "--test", str(test),
          "--out", str(env / "a")])
    config = json.loads((env / "a" / "config.json").read_text())
    assert config["labels"] == 9 and config["classes"] == ["a", "b", "c"]
    assert "9 labelled + 90 unlabelled images" in capsys.readouterr().out
    (unl / "labels.csv").write_text("".join(f"{c}{i:03d}.png,{c}\n" for c in "abc" for i in range(2)))
    main(["ssl", "--quick", "--labels-file", str(unl / "labels.csv"), "--unlabelled", str(unl),
          "--out", str(env / "b")])
    assert "6 labelled + 84 unlabelled images (1 non-image files skipped)" in capsys.readouterr().out


def test_resume_uses_the_recorded_data_and_refuses_other_data(env, capsys):
    letters = render(env / "letters", 30, classes="abcd")
    ckpt = env / "run" / "checkpoint.npz"
    main(["ssl", "--quick", "--data", str(letters), "--labels", "8", "--epochs", "1", "--out", str(env / "run")])
    main(["ssl", "--resume", str(ckpt), "--epochs", "2"])  # no --data: the checkpoint's
    assert "100 images to learn from" in capsys.readouterr().out
    other = render(env / "other", 30, seed=5, classes="abcd")
    with pytest.raises(SystemExit) as e:
        main(["ssl", "--resume", str(ckpt), "--epochs", "3", "--data", str(other)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not the checkpoint's" in err and "--new-data" in err
    main(["ssl", "--resume", str(ckpt), "--epochs", "3", "--data", str(other), "--new-data"])
    log = [json.loads(line) for line in (env / "run" / "log.jsonl").read_text().splitlines()]
    switches = [r for r in log if "data_switch" in r]
    assert len(switches) == 1 and switches[0]["data_switch"]["to"]["path"] == str(other)
    assert [r["epoch"] for r in log if "epoch" in r] == [1, 2, 3]
    shutil.rmtree(other)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # the recorded data is gone: one line naming it
        main(["ssl", "--resume", str(ckpt), "--epochs", "4"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"the checkpoint's data {other} is gone" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # a model sized for 4 classes cannot take 3
        main(["ssl", "--resume", str(ckpt), "--epochs", "4", "--data", str(render(env / "three", 40, classes="abc")),
              "--new-data"])
    assert e.value.code == 2 and "built for 4 classes" in capsys.readouterr().err


@pytest.mark.parametrize("make, words", [
    (lambda r: (r / "a" / "a000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20)), "a000.png: cannot read this image"),
    (lambda r: (r / "e").mkdir(), "holds no images"),
])
def test_bad_image_data_stops_ssl_with_one_line(env, capsys, make, words):
    letters = render(env / "letters", 4, classes="abcd")
    make(letters)
    with pytest.raises(SystemExit) as e:
        main(["ssl", "--quick", "--data", str(letters), "--labels", "4", "--out", str(env / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (env / "run" / "checkpoint.npz").exists()


def test_train_sizes_a_conditional_gan_from_26_letters_and_records_its_data(env, capsys):
    from tinygan.models.checkpoint import load_gan
    letters = render(env / "letters", 4)
    main(["train", "--conditional", "--data", str(letters), "--iterations", "4", "--batch-size", "8",
          "--g-hidden", "16", "--d-hidden", "16", "--out", str(env / "gan")])
    gan = load_gan(env / "gan" / "checkpoint.npz")
    assert gan.config["classes"] == list(LETTERS) and gan.config["data"]["shape"] == [104, 28, 28]
    assert gan.G.layers[0].n_in == 100 + 26 and gan.D.layers[0].n_in == 784 + 26
    assert gan.sample(5, np.arange(5)).shape == (5, 28, 28)
    main(["train", "--resume", str(env / "gan" / "checkpoint.npz"), "--iterations", "6"])  # the recorded data
    other = render(env / "other", 4, seed=9)
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(env / "gan" / "checkpoint.npz"), "--iterations", "8", "--data", str(other)])
    assert e.value.code == 2 and "pass --new-data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(letters), "--eval", "--iterations", "2", "--out", str(env / "gan2")])
    assert e.value.code == 2 and "MNIST classifier" in capsys.readouterr().err


def test_evaluate_refuses_a_model_of_other_classes_in_one_line(env, capsys):
    main(["train", "--conditional", "--data", str(render(env / "letters", 2)), "--iterations", "2", "--batch-size", "8",
          "--g-hidden", "8", "--d-hidden", "8", "--out", str(env / "gan")])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--checkpoint", str(env / "gan" / "checkpoint.npz")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "makes 26 classes of 28 x 28" in err and len(err.strip().splitlines()) == 1


def readme_section():
    """The bash and python blocks of README's "Your own handwriting"."""
    import re
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Your own handwriting", 1)[1].split("\n## ", 1)[0]
    return (re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip().splitlines(),
            re.search(r"```python\n(.*?)```", section, re.S).group(1))


def test_readme_own_handwriting_commands_and_python_run(env, monkeypatch, capsys):
    import shlex
    commands, python = readme_section()
    assert len(commands) == 3 and all(c.startswith("tinygan ") for c in commands)
    monkeypatch.chdir(env)
    render(env / "scans" / "labelled", 3, seed=1, classes="abc")
    render(env / "scans" / "unlabelled", 30, seed=2, classes="abc", flat=True)
    render(env / "scans" / "test", 4, seed=3, classes="abc")
    render(env / "scans" / "new", 2, seed=4, classes="abc", flat=True)
    for line in commands:
        argv = shlex.split(line)[1:]
        if argv[0] == "ssl":  # the README's run, in seconds: a tiny model and 3 short epochs
            i = argv.index("--epochs")
            argv[i:i + 2] = ["--quick"]
        main(argv)
    said = capsys.readouterr()
    assert "accuracy" in said.err + said.out
    rows = list(csv.reader(open(env / "readings.csv")))
    assert rows[0][-1] == "unsure" and len(rows) == 7 and {r[1] for r in rows[1:]} <= set("abc")
    os.unlink(env / "readings.csv")
    exec(compile(python, "README.md", "exec"), {})
    again = list(csv.reader(open(env / "readings.csv")))
    assert [os.path.basename(r[0]) for r in again[1:]] == [os.path.basename(r[0]) for r in rows[1:]]
    assert [r[1] for r in again[1:]] == [r[1] for r in rows[1:]]  # the same readings as the command's


def test_sample_writes_class_folders_that_data_reads_back(env, capsys):
    letters = render(env / "letters", 3, classes="abcd")
    main(["train", "--conditional", "--data", str(letters), "--iterations", "2", "--batch-size", "4",
          "--g-hidden", "8", "--d-hidden", "8", "--out", str(env / "gan")])
    main(["sample", "--checkpoint", str(env / "gan" / "checkpoint.npz"), "--n", "12", "--format", "folders,npz",
          "--out", str(env / "s")])
    assert sorted(os.listdir(env / "s" / "images")) == list("abcd")
    assert not [n for n in os.listdir(env / "s") if n.startswith(".tmp")]
    from tinygan.data import sources
    back = sources.class_folders(env / "s" / "images", normalize=False)
    with np.load(env / "s" / "samples.npz") as f:
        assert np.array_equal(back.x, f["images"][np.argsort(f["labels"], kind="stable")])
    main(["train", "--data", str(env / "s" / "images"), "--no-normalize", "--iterations", "2", "--batch-size", "4",
          "--g-hidden", "8", "--d-hidden", "8", "--out", str(env / "again")])


def test_images_kept_as_given_size_the_model_and_are_read_the_same_way(env, capsys):
    letters = render(env / "letters", 40, classes="abc")  # 40 x 40 pages, kept as they are
    main(["ssl", "--quick", "--data", str(letters), "--labels", "6", "--no-normalize", "--out", str(env / "run")])
    model, info = load_recognizer(env / "run" / "recognizer.npz")
    assert info["sizes"][0] == 1600 and model.image == (40, 40) and info["data"]["normalize"] is False
    from tinygan.commands.read import main as read_main
    capsys.readouterr()
    read_main(["--recognizer", str(env / "run" / "recognizer.npz"), str(letters / "a")], prog="tinygan read")
    assert len(list(csv.reader(io.StringIO(capsys.readouterr().out)))) == 41


def test_without_normalising_folders_and_idx_train_bit_identically(env):
    from tinygan.data.idx import write_idx
    from tinygan.data.mnist import bundled_dir, read_idx
    x = read_idx(os.path.join(bundled_dir(), "t10k-images-idx3-ubyte.gz"))[:200]
    y = read_idx(os.path.join(bundled_dir(), "t10k-labels-idx1-ubyte.gz"))[:200]
    order = np.argsort(y, kind="stable")  # class folders list class by class, files in name order
    x, y = x[order], y[order]
    (env / "idx").mkdir()
    write_idx(env / "idx" / "mine-train-images-idx3-ubyte", x)
    write_idx(env / "idx" / "mine-train-labels-idx1-ubyte", y)
    for i, (img, label) in enumerate(zip(x, y)):
        (env / "png" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(env / "png" / str(label) / f"{i:04d}.png")
    for name in ("idx", "png"):
        main(["ssl", "--quick", "--labels", "10", "--no-normalize", "--data", str(env / name), "--out", str(env / f"r{name}")])
    with np.load(env / "ridx" / "checkpoint.npz") as a, np.load(env / "rpng" / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if k != "config":  # it names the two sources
                assert np.array_equal(a[k], b[k]), k
    hashes = [json.loads((env / f"r{n}" / "config.json").read_text())["data"]["hash"] for n in ("idx", "png")]
    assert hashes[0] == hashes[1]  # the same images and labels: the same fingerprint


def test_a_checkpoint_from_before_data_sources_resumes_on_mnist(env, capsys):
    main(["ssl", "--quick", "--labels", "20", "--epochs", "1", "--out", str(env / "old")])
    ckpt = env / "old" / "checkpoint.npz"
    with np.load(ckpt) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    for key in ("image", "classes", "data"):
        del config[key]
    arrays["config"] = np.array(json.dumps(config))
    np.savez(ckpt, **arrays)
    main(["ssl", "--resume", str(ckpt), "--epochs", "2"])
    resumed = json.loads((env / "old" / "config.json").read_text())
    assert resumed["data"]["kind"] == "mnist" and load_recognizer(env / "old" / "recognizer.npz")[1]["epochs"] == 2
