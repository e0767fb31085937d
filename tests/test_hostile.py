"""Hostile files and absurd numbers: every size read from a checkpoint is bounded and checked before allocation."""
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from run_helpers import SMALL, arrays, fails
from tinygan.commands import evaluate, sample, train
from tinygan.models.checkpoint import CheckpointError, read_checkpoint

pytestmark = pytest.mark.usefixtures("offline")  # the bundled test split only (conftest.py)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A 5-iteration checkpoint of a tiny GAN."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGAN_OFFLINE", "1")
        train.main([*SMALL, "--iterations", "5", "--out", str(out)])
    return out / "checkpoint.npz"


def rewrite(src, dst, config=None, **members):
    """Copy a checkpoint with config fields changed and members replaced or added (None: removed)."""
    a = arrays(src)
    c = json.loads(str(a["config"]))
    c.update(config or {})
    a["config"] = np.array(json.dumps(c))
    for k, v in members.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    np.savez(dst, **a)
    return dst


def add_zeros(path, name, shape, dtype="<f4"):
    """Append a deflated all-zero npy member whose header honestly says shape: small on disk, large in memory."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
            left, block = int(np.prod(shape)) * np.dtype(dtype).itemsize, bytes(1 << 22)
            while left:
                f.write(block[:min(left, len(block))])
                left -= min(left, len(block))


def every_tool(bad, tmp_path, capsys, words):
    """The same one line (exit 2) from sample, evaluate and train --resume; nothing written."""
    for tool, argv in ((sample.main, ["--checkpoint", str(bad), "--out", str(tmp_path / "s")]),
                       (evaluate.main, ["--checkpoint", str(bad), "--n", "100"]),
                       (train.main, ["--resume", str(bad), "--iterations", "9", "--out", str(tmp_path / "r")])):
        line = fails(tool, argv, capsys)
        assert words in line and "Traceback" not in line, line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("config, words", [
    ({"g_hidden": [1_000_000, 1_000_000]}, "field 'config.g_hidden' is [1000000, 1000000], it must be"),
    ({"d_hidden": [40000, 40000]}, "field 'config.d_hidden' is [40000, 40000], it must be"),
    ({"latent_dim": 10**9}, "field 'config.latent_dim' is 1000000000, it must be a positive integer (at most"),
    ({"g_hidden": [16384] * 16}, "describes a G of"),
    ({"batch_size": 10**12}, "field 'config.batch_size'"),
    ({"seed": -1}, "field 'config.seed' is -1"),
], ids=["g_hidden_1e6", "d_hidden_40k", "latent_1e9", "too_many_params", "batch_1e12", "seed_negative"])
def test_sizes_in_a_config_are_bounded_before_a_model_is_built(ckpt, tmp_path, capsys, config, words):
    every_tool(rewrite(ckpt, tmp_path / "bad.npz", config), tmp_path, capsys, words)


@pytest.mark.parametrize("dtype", ["int64", "complex64"])
def test_weights_must_be_floats(ckpt, tmp_path, capsys, dtype):
    w = arrays(ckpt)["G/0.W"]
    bad = rewrite(ckpt, tmp_path / "bad.npz", **{"G/0.W": w.astype(dtype)})
    every_tool(bad, tmp_path, capsys, f"field 'G/0.W' holds {dtype} numbers; weights and optimizer state are floats")


def test_a_huge_known_member_is_refused_from_its_header_unread(ckpt, tmp_path):
    bad = rewrite(ckpt, tmp_path / "bad.npz", **{"G/0.W": None})
    add_zeros(bad, "G/0.W", (16_000_000,))  # 64 MB of zeros, 60 kB on disk
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"field 'G/0.W' claims 16,000,000 numbers"):
        read_checkpoint(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6, f"{peak / 1e6:.0f} MB allocated while refusing a member by its header"


def test_an_unknown_member_is_never_loaded(ckpt, tmp_path, capsys):
    bad = tmp_path / "extra.npz"
    bad.write_bytes(ckpt.read_bytes())
    add_zeros(bad, "junk", (64_000_000,), "|u1")  # 64 MB member no checkpoint holds
    tracemalloc.start()
    a, _ = read_checkpoint(bad)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "junk" not in a and peak < 8e6, f"{peak / 1e6:.0f} MB"
    sample.main(["--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--n", "10"])
    assert (tmp_path / "s" / "samples.png").is_file()


def test_a_header_that_lies_about_its_size(ckpt, tmp_path, capsys):
    bad = rewrite(ckpt, tmp_path / "bad.npz", **{"G/0.W": None})
    with zipfile.ZipFile(bad, "a") as zf:  # claims (10**6, 10**6) float64 but holds 16 bytes
        with zf.open("G/0.W.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
            f.write(bytes(16))
    every_tool(bad, tmp_path, capsys, "claims shape (1000000, 1000000) of float64 (8000000000000 bytes) but holds 16")


def test_a_config_string_of_ten_megabytes(ckpt, tmp_path, capsys):
    bad = rewrite(ckpt, tmp_path / "bad.npz", config={"preset": "x" * 10_000_000})
    every_tool(bad, tmp_path, capsys, "field 'config' must be one JSON string (of at most")


def test_a_pickled_member_is_refused(ckpt, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    a = arrays(ckpt)
    a["G/0.W"] = np.array([{"a": 1}], dtype=object)
    np.savez(bad, **a)
    every_tool(bad, tmp_path, capsys, "holds Python objects")
