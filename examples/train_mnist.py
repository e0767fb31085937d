"""Train a GAN on MNIST: python examples/train_mnist.py [--preset deep] [--conditional] [--backend cupy].

The same as `tinygan train`; the training loop is tinygan/commands/train.py, read top to bottom.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
from tinygan.commands.train import main  # noqa: E402

if __name__ == "__main__":
    main()
