"""Helpers shared by the run-folder tests: a checkpoint's arrays, and a command's one-line failure."""
import numpy as np
import pytest

SMALL = ["--g-hidden", "32", "--d-hidden", "32", "--batch-size", "16"]  # a tiny GAN for command tests


def arrays(path):
    """Every array of an .npz file, loaded without pickle."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def same_state(a, b):
    """The names of the arrays that differ between two .npz files with the same names."""
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
