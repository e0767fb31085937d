"""Train a digit recognizer from few labels and many unlabelled digits: python examples/train_ssl.py --labels 100.

The same as `tinygan ssl`; the training loop is tinygan/commands/ssl.py, read top to bottom.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
from tinygan.commands.ssl import main  # noqa: E402

if __name__ == "__main__":
    main()
