"""A training step moves no data between host and device: counted with arrays that log every exit."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.models.gan import GAN, Dataset, make_config


class DeviceArray(np.ndarray):
    """A numpy array standing in for device memory: reading a value out of it counts as a transfer."""
    transfers = []

    def _count(self, what):
        DeviceArray.transfers.append(what)

    def __getitem__(self, index):
        out = super().__getitem__(index)  # a scalar would leave the device unseen: keep it a 0-d array
        return out if isinstance(out, np.ndarray) else np.asarray(out).view(DeviceArray)

    def __float__(self):
        self._count("float()")
        return super().__float__()

    def __int__(self):
        self._count("int()")
        return super().__int__()

    def __bool__(self):
        self._count("bool()")
        return super().__bool__()

    def __index__(self):
        self._count("index")
        return super().__index__()

    def item(self, *args):
        self._count("item()")
        return super().item(*args)

    def tolist(self):
        self._count("tolist()")
        return super().tolist()


class CountingBackend(tg.Backend):
    """The numpy backend, but every array it makes is a DeviceArray and every upload is counted."""
    uploads = []

    def randn(self, *shape, out=None):
        return super().randn(*shape, out=out).view(DeviceArray)

    def rand(self, *shape, out=None):
        return super().rand(*shape, out=out).view(DeviceArray)

    def randint(self, high, size):
        return super().randint(high, size).view(DeviceArray)

    def zeros(self, *shape):
        return super().zeros(*shape).view(DeviceArray)

    def asarray(self, x, dtype=None):
        if not isinstance(x, DeviceArray):
            CountingBackend.uploads.append(getattr(x, "shape", type(x)))
        return super().asarray(x, dtype).view(DeviceArray)

    def to_host(self, x):
        DeviceArray.transfers.append("to_host()")
        return np.asarray(x)


@pytest.mark.parametrize("preset, conditional", [("seed", False), ("deep", False), ("deep", True)])
def test_step_makes_no_transfers(preset, conditional):
    be = CountingBackend("numpy", "float32", seed=0)
    config = make_config(preset, conditional=conditional, g_hidden=[16, 32], d_hidden=[32, 16], ema=0.99, smooth=0.9)
    gan = GAN(config, be)
    rng = np.random.default_rng(0)
    data = Dataset(rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), rng.integers(0, 10, 50), be,
                   config["data_range"])
    DeviceArray.transfers.clear()
    CountingBackend.uploads.clear()
    for _ in range(3):
        real, labels = data.sample(8)
        stats = gan.step(real, labels if conditional else None)
    assert DeviceArray.transfers == [], f"device-to-host reads inside the step: {DeviceArray.transfers}"
    assert CountingBackend.uploads == [], f"host-to-device uploads inside the step: {CountingBackend.uploads}"
    assert all(isinstance(v, DeviceArray) for v in stats.values()), "step statistics should stay on the device"
    assert isinstance(gan.G.flat_params, DeviceArray), "the counting arrays did not reach the model"


def test_the_counter_sees_a_transfer():
    be = CountingBackend("numpy", "float32", seed=0)
    DeviceArray.transfers.clear()
    float(be.zeros(1)[0])
    assert DeviceArray.transfers == ["float()"]
