"""Score a checkpoint's digits: python examples/evaluate.py --checkpoint runs/mnist/checkpoint.npz.

The same as `tinygan evaluate`; the code is tinygan/commands/evaluate.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout
try:  # a Ctrl-C while the imports run (about 0.5 s) is one line too
    from tinygan.commands.evaluate import main  # noqa: E402
except KeyboardInterrupt:
    print(f"{os.path.basename(__file__)}: error: interrupted while starting; nothing was written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    main()
