"""A training run's folder, for any training script: one run per folder, a lock, resume checks, the log, signals."""
import contextlib
import glob
import json
import math
import os
import shlex
import signal
import sys
import zipfile

from ..engine.backend import xp_of
from .cli import UsageError
from .fileio import atomic_write, clean_temps, npz_headers, npz_read

try:
    import fcntl  # POSIX: a lock the kernel drops when its process dies, even by kill -9
except ImportError:  # Windows: runs are not locked there
    fcntl = None

RUN_FILES = ("checkpoint.npz", "log.jsonl")  # what makes a folder hold a run
# Every file each kind of run writes in its folder: --overwrite removes those of the run it replaces, whatever its kind.
PRODUCTS = {
    "train": RUN_FILES + ("config.json", "curves.png", "internals.png", "samples_*.png"),
    "ssl": RUN_FILES + ("config.json", "curves.png", "samples.png", "recognizer.npz", "pseudo.npz"),
}
OUTPUTS = PRODUCTS["train"]  # (the older name)
LOCK = ".lock"


class Run:
    """A claimed run folder: locked against other runs until close(); start() clears what --overwrite replaces."""

    def __init__(self, out, resume=None, overwrite=False, outputs=None, prog="tinygan train", kind="train"):
        self.out, self.lock, self.old = out, None, []
        self._claim(prog)
        clean_temps(out)  # temp files of runs that died here (kill -9, power cut) are garbage now
        own = resume is not None and os.path.samefile(os.path.dirname(os.path.abspath(resume)), out)
        held = [n for n in RUN_FILES if os.path.exists(os.path.join(out, n))]
        if held and not own:
            if not overwrite:
                self.close()
                what = describe(out)
                how = continue_hint(out) if "checkpoint.npz" in held else ""
                raise UsageError(f"--out {out} already holds another run ({what}): {how}to replace it pass "
                                 "--overwrite; or choose another --out")
            found = kind_of(out)  # the old run goes as a whole, whatever its kind: no stale files beside new ones
            patterns = PRODUCTS[kind] + tuple(outputs or ()) + (PRODUCTS[found] if found else
                                                                 sum(PRODUCTS.values(), ()))
            for pattern in dict.fromkeys(patterns):
                self.old += glob.glob(os.path.join(glob.escape(out), pattern))

    def start(self):
        """Remove the replaced run's files: call it once the new run is sure to start (data loaded, model built)."""
        for path in self.old:
            os.unlink(path)
        self.old = []

    def begin(self, prog, config, resume=None, iteration=0):
        """Start the run: its log so far (a resumed checkpoint's, up to its iteration), config.json and log.jsonl."""
        records = []
        if resume:  # the checkpoint's log up to the checkpoint; what came after it never happened
            records, warning = read_log(os.path.join(os.path.dirname(resume) or ".", "log.jsonl"), iteration)
            if warning:
                print(f"{prog}: warning: {warning}", file=sys.stderr)
        self.start()  # from here on the folder is this run's
        atomic_write(os.path.join(self.out, "config.json"), lambda f: f.write(json.dumps(config, indent=2).encode()))
        write_log(os.path.join(self.out, "log.jsonl"), records)
        return records

    def _claim(self, prog):
        """Take the folder's lock, or raise UsageError naming the process that holds it."""
        if fcntl is None:
            return
        path = os.path.join(self.out, LOCK)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            other = f.read().strip() or "unknown process"
            f.close()
            raise UsageError(f"--out {self.out} is in use by another run ({other}); wait for it to finish or stop it, "
                             "or choose another --out") from None
        f.seek(0)
        f.truncate()
        args = sys.argv[1:]
        if args[:1] == prog.split()[-1:]:  # `tinygan train ...`: prog already ends with the command's name
            args = args[1:]
        f.write(f"process {os.getpid()}: {prog} {' '.join(args)}".strip() + "\n")
        f.flush()
        self.lock = f

    def close(self):
        """Release the lock (the kernel also drops it if the process dies)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def peek(ckpt):
    """(iteration, config dict) of a checkpoint file, its two small members read after their headers; None if unreadable."""
    try:
        with zipfile.ZipFile(ckpt) as zf:
            h = npz_headers(zf, lambda n: n in ("iteration", "config"))
            it, config = h.get("iteration"), h.get("config")
            if it is None or it.shape != () or it.dtype.kind not in "iu" or config is None or config.shape != () \
                    or config.dtype.kind != "U" or config.nbytes > 4 << 20:
                return None
            config = json.loads(str(npz_read(zf, config)))
            return int(npz_read(zf, it)), config if isinstance(config, dict) else {}
    except Exception:
        return None


def kind_of(out):
    """The kind of run ('train', 'ssl') a folder holds, from its checkpoint or config.json; None if unknown."""
    found = peek(os.path.join(out, "checkpoint.npz"))
    config = found[1] if found else None
    if config is None:
        try:
            with open(os.path.join(out, "config.json")) as f:
                config = json.loads(f.read(1 << 20))
        except (OSError, ValueError):
            return None
    if not isinstance(config, dict):
        return None
    return "ssl" if config.get("kind") == "ssl" else "train" if "preset" in config else None


def continue_hint(out):
    """How to go on with the run in out: --resume (with a target beyond a finished run's), for a refusal message."""
    ck = os.path.join(out, "checkpoint.npz")
    found = peek(ck)
    flag, unit = ("--epochs", "epochs") if found and found[1].get("kind") == "ssl" else ("--iterations", "iterations")
    if found and flag == "--iterations" and isinstance(found[1].get("iterations"), int) \
            and found[0] >= found[1]["iterations"]:
        return f"it is finished: to train it further pass {shlex.join(['--resume', ck])} {flag} N (N above {found[0]}); "
    return f"to continue it pass {shlex.join(['--resume', ck])}; "


def describe(out):
    """What a folder holds of a run, for messages: 'checkpoint at iteration 200, log up to iteration 200'."""
    parts = []
    ck = os.path.join(out, "checkpoint.npz")
    if os.path.exists(ck):
        found = peek(ck)
        parts.append(f"checkpoint at iteration {found[0]}" if found else "an unreadable checkpoint.npz")
    log = os.path.join(out, "log.jsonl")
    if os.path.exists(log):
        records, _ = read_log(log, strict=False)
        last = max((r.get("iter", 0) for r in records if isinstance(r, dict)), default=0)
        parts.append(f"log up to iteration {last}" if records else "an empty log")
    return ", ".join(parts)


def read_log(path, upto=None, strict=True):
    """(records with iter <= upto, warning or None): a torn last line (a crash mid-write) is dropped with a warning."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return [], None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the log ({e}); move it away to resume without it") from None
    records, warning = [], None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("iter"), int):
                raise ValueError("not a log record")
        except ValueError:
            if n == len(lines) or not strict:  # the last line: a write cut short
                warning = f"{path}: line {n} is incomplete (a run stopped while writing it); dropped it"
                continue
            raise UsageError(f"{path}: line {n} is not a log record; the log is damaged: move it away "
                             "to resume without it") from None
        if upto is None or record["iter"] <= upto:
            records.append(record)
    return records, warning


def write_log(path, records):
    """Replace the log with these records, atomically."""
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))


def append_log(path, record):
    """Add one record to the log, as one write."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def check_resume_flags(given, args, config, allowed, names=None):
    """UsageError for a flag given with --resume that would change the checkpoint's model or its training."""
    # given: dests written on the command line; allowed: the run-control dests; names: dest -> config key
    names = names or {}
    for dest in sorted(given - set(allowed)):
        key = names.get(dest, dest)
        value, saved = getattr(args, dest), config.get(key)
        if isinstance(saved, float) or isinstance(value, float):
            same = value is not None and saved is not None and float(value) == float(saved)
        else:
            same = value == saved
        if not same:
            flag = "--" + dest.replace("_", "-")
            raise UsageError(f"{flag} cannot change a resumed run: the checkpoint's {key} is {json.dumps(saved)}; "
                             f"drop {flag}, or start a new run with another --out")


def check_target(done, asked, saved, flag="--iterations", unit="iterations"):
    """The target of a resumed run (asked, else the checkpoint's saved one); UsageError unless it lies beyond done."""
    target = asked or saved
    if target <= done:
        why = flag if asked else f"the checkpoint's target ({saved} {unit})"
        raise UsageError(f"the checkpoint is at {unit[:-1]} {done} and {why} asks for {target}: nothing to train; "
                         f"pass {flag} above {done} to train further")
    return target


def first_nonfinite(named):
    """The name of the first array (or number) in {name: value} holding NaN or inf, else None."""
    for name, a in named.items():
        finite = math.isfinite(a) if isinstance(a, (int, float)) else bool(xp_of(a).isfinite(a).all())
        if not finite:
            return name
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the code runs (as Ctrl-C is), so with-blocks and atomic writes clean up on the way out."""


@contextlib.contextmanager
def terminate_raises():
    """Within the block, SIGTERM raises Terminated (default: the process dies at once and leaves its temp files)."""
    def handle(signum, frame):
        raise Terminated()
    saved = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)


class Signals:
    """Within `with Signals() as s:`, SIGINT and SIGTERM set s.signum instead of stopping the process at once."""

    def __init__(self):
        self.signum, self.saved = None, {}

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self.saved[signum])  # a second signal acts at once (Ctrl-C twice: stop now)

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.saved[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self.saved.items():
            signal.signal(s, handler)

    @property
    def exit_code(self):
        """128 + the signal number, as a shell reports a process stopped by it: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    @property
    def name(self):
        return signal.Signals(self.signum).name
