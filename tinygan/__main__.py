"""The tinygan command: tinygan train|sample|evaluate|report|ssl|export|read [flags] (also python -m tinygan ...)."""
import importlib
import sys

INTERRUPTED = "interrupted while starting; nothing was written"  # (tinygan.commands would load the whole package)

COMMANDS = {
    "train": "train a GAN on MNIST (the flags of examples/train_mnist.py)",
    "sample": "generate digits from a checkpoint: png, npy, npz or IDX files",
    "evaluate": "score a checkpoint's digits with the shipped classifier",
    "report": "redraw a run's curves.png and internals.png from its log",
    "ssl": "train a digit recognizer from few labels: the semi-supervised GAN (examples/train_ssl.py)",
    "export": "write the recognizer.npz of a tinygan ssl checkpoint",
    "read": "read images with a recognizer: a CSV of labels and confidences",
}


def usage():
    lines = ["usage: tinygan COMMAND [flags]   (tinygan COMMAND --help for its flags)", "", "commands:"]
    return "\n".join(lines + [f"  {name:9s} {what}" for name, what in COMMANDS.items()])


def main(argv=None):
    """Run one command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__
        print(f"tinygan {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"tinygan: error: unknown command {name!r}: choose one of {', '.join(COMMANDS)} (see --help)",
              file=sys.stderr)
        return 2
    try:  # its imports take a moment (matplotlib): a Ctrl-C then is the same one line as a Ctrl-C later
        command = importlib.import_module(f"tinygan.commands.{name}")
    except KeyboardInterrupt:
        print(f"tinygan {name}: error: {INTERRUPTED}", file=sys.stderr)
        return 130
    command.main(argv[1:], prog=f"tinygan {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
