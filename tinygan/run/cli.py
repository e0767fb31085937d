"""Command-line pieces shared by the commands and example scripts: the parser, flag types, one-line errors."""
import argparse
import math
import os
import shlex
import sys

from .limits import MAX_LAYERS, MAX_SEED, MAX_THREADS, MAX_UNITS


class UsageError(Exception):
    """Bad usage found after parsing (a file, a folder, a flag that conflicts with a checkpoint): exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with exit code 2, instead of a usage block."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --cond is not --conditional: what was given is what is named
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        """add_argument, with the default shown in --help wherever one is set and the help does not give it."""
        default, help = kwargs.get("default"), kwargs.get("help")
        if default is not None and default is not False and default != argparse.SUPPRESS and \
                help != argparse.SUPPRESS and \
                "default" not in (help or ""):
            shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            kwargs["help"] = f"{help + ' ' if help else ''}(default {shown})".replace("%", "%%")
        return super().add_argument(*args, **kwargs)

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)

    def given(self, argv):
        """The dests of the flags written out in argv (not those left at their defaults)."""
        argv = sys.argv[1:] if argv is None else argv
        words = argv[:argv.index("--")] if "--" in argv else argv
        return {a.dest for a in self._actions for s in a.option_strings
                if any(w == s or w.startswith(s + "=") for w in words)}


def named(flag, errors, fn, *args, **kwargs):
    """fn(*args, **kwargs), with `errors` told as bad usage of the flag that named the file: one line, exit 2."""
    try:
        return fn(*args, **kwargs)
    except errors as e:
        raise UsageError(f"{flag}: {e}") from None


def fail(prog, message, code=2):
    """Print one line `prog: error: message` and exit (2: bad usage or a file that cannot be used)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def prog_name(prog, script):
    """The name errors are printed under: the given prog ('tinygan train'), or the example script's file name."""
    return prog or script


SCRIPTS = {"train": "train_mnist.py", "sample": "sample.py", "evaluate": "evaluate.py", "ssl": "train_ssl.py"}


def command(prog, name):
    """How to run another command, the way this one was run: 'tinygan sample' or 'python examples/sample.py'."""
    return f"tinygan {name}" if prog.startswith("tinygan") else f"python examples/{SCRIPTS[name]}"


def shell(prog, name, *words):
    """A command line for the user to paste: the command as this one was run, then words, shell-quoted."""
    return " ".join([command(prog, name), shlex.join(str(w) for w in words)]).strip()


def positive(cast, hi=None):
    """An argparse type: a number of `cast` that must be > 0 and finite (and at most hi, if given)."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n' if cast is int else ''} {cast.__name__}") from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite {cast.__name__}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{text} is more than the {hi:,} allowed")
        return value
    parse.__name__ = f"positive {cast.__name__}"
    return parse


def seed(text):
    """An argparse type: a random seed, an integer from 0 to MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} must be an integer from 0 to {MAX_SEED}")
    return value


def count(hi):
    """An argparse type: an integer from 0 to hi."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} must be >= 0")
        if value > hi:
            raise argparse.ArgumentTypeError(f"{text} is more than the {hi:,} allowed")
        return value
    parse.__name__ = "int"
    return parse


def in_range(lo, hi, closed_hi=False, closed_lo=True):
    """An argparse type: a float in [lo, hi) (or with the given ends closed/open)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a float") from None
        ok = (value >= lo if closed_lo else value > lo) and (value <= hi if closed_hi else value < hi)
        if not ok:
            left, right = "[" if closed_lo else "(", "]" if closed_hi else ")"
            raise argparse.ArgumentTypeError(f"{text} must be in {left}{lo:g}, {hi:g}{right}")
        return value
    parse.__name__ = "float"
    return parse


def non_negative(text):
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a float") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def non_negative_upto(hi):
    """An argparse type: a finite float from 0 to hi."""
    def parse(text):
        value = non_negative(text)
        if value > hi:
            raise argparse.ArgumentTypeError(f"{text} is more than the {hi:g} allowed")
        return value
    parse.__name__ = "float"
    return parse


def sizes(text):
    """An argparse type: comma-separated positive layer sizes, e.g. 128,256."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive sizes such as 256,512")
    if len(values) > MAX_LAYERS or max(values) > MAX_UNITS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_LAYERS} layers of at most {MAX_UNITS} units")
    return values


def names(allowed, example):
    """An argparse type: comma-separated names, each one of `allowed` (example: a valid list, for the message)."""
    def parse(text):
        given = [n.strip() for n in text.split(",") if n.strip()]
        if not given or any(n not in allowed for n in given):
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)} (several: {example})")
        return given
    return parse


def add_threads(p):
    """The --threads flag: BLAS threads for the numpy backend (default 1: see README, Threads)."""
    p.add_argument("--threads", type=positive(int, MAX_THREADS), default=1,
                   help="BLAS threads on the CPU (default 1: a small MLP gains little from more, and spinning "
                        "worker threads slow a busy machine down many times over)")


def set_threads(n):
    """Limit the BLAS (and OpenMP) thread pools of this process to n threads, at run time."""
    from threadpoolctl import threadpool_limits
    global _limits
    _limits = threadpool_limits(limits=n)  # kept alive: the limit holds for the rest of the process
    return _limits


_limits = None


def output_folder(path, flag="--out"):
    """Create the folder path (and its parents) or raise UsageError saying why it cannot be."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a file, not a folder: choose a folder (it is created if missing)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {path!r}: cannot create the folder ({e.strerror or e})") from None
    return path


def write_error(e):
    """One line for an OSError met while writing (read-only folder, full disk, a folder in a file's place)."""
    what = e.filename if e.filename else "a file"
    return f"cannot write {what}: {e.strerror or e}; nothing was left half-written, fix the cause and run again"
