"""Train a GAN on MNIST: python examples/train_mnist.py [--preset deep] [--conditional] [--backend cupy].

The same as `tinygan train`; the training loop is tinygan/commands/train.py, read top to bottom.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
try:  # a Ctrl-C while the imports run (about 0.5 s) is one line too
    from tinygan.commands.train import main  # noqa: E402
except KeyboardInterrupt:
    print(f"{os.path.basename(__file__)}: error: interrupted while starting; nothing was written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    main()
