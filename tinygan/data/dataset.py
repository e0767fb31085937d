"""Training images on the device: uint8 storage, one float batch at a time."""
from ..engine.backend import reuse


class Dataset:
    """Images kept on the device as uint8, converted to the preset's range one batch at a time."""

    def __init__(self, images, labels, be, data_range="unit"):
        if len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"a Dataset needs as many labels as images, and at least one: got {len(images)} "
                             f"images and {len(labels)} labels")
        self.be, self.buffers = be, {}
        self.images = be.asarray(images.reshape(len(images), -1), dtype="uint8")  # (N, 784) uint8
        self.labels = be.asarray(labels, dtype="int64")                          # (N,)
        # unit: x / 255 in [0, 1]; signed: x / 127.5 - 1 in [-1, 1]
        self.scale, self.shift = (1 / 255, 0.0) if data_range == "unit" else (1 / 127.5, -1.0)

    def __len__(self):
        return len(self.labels)

    def sample(self, batch_size):
        """A random batch (with replacement) as floats in a reused buffer, valid until the next call, and its labels."""
        be, pixels = self.be, self.images.shape[1]
        idx = be.randint(len(self), batch_size)
        u8 = be.take_rows(self.images, idx, reuse(self.buffers, "u8", self.images, (batch_size, pixels)))
        x = reuse(self.buffers, "x", self.images, (batch_size, pixels), dtype=be.dtype)
        be.xp.multiply(u8, be.dtype.type(self.scale), out=x)  # uint8 -> float happens here, batch by batch
        if self.shift:
            x += self.shift
        return x, self.labels[idx]
