"""Score a checkpoint's digits: python examples/evaluate.py --checkpoint runs/mnist/checkpoint.npz.

The same as `tinygan evaluate`; the code is tinygan/commands/evaluate.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
from tinygan.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
