"""The commands of `tinygan` (and of the scripts in examples/): train, sample, evaluate, report, ssl, export, read."""
from ..run import cli
from ..engine.backend import BackendError
from ..models.checkpoint import CheckpointError
from ..data.mnist import MNISTDataError
from ..data.images import ImageError
from ..models.recognizer import RecognizerError

INTERRUPTED = "interrupted at once; every file written so far is complete (writes are atomic)"


def guarded(command, argv, prog, interrupted=INTERRUPTED, also=()):
    """command(argv, prog), with bad usage, data, checkpoints or disk as one line and exit 2 (Ctrl-C: 130)."""
    try:
        return command(argv, prog)
    except (cli.UsageError, CheckpointError, MNISTDataError, BackendError, ImageError, RecognizerError) + tuple(also) as e:
        cli.fail(prog, e)
    except OSError as e:
        cli.fail(prog, cli.write_error(e))
    except KeyboardInterrupt as e:  # Ctrl-C (130), or SIGTERM where a command turns it into Terminated (143)
        terminated = type(e).__name__ == "Terminated"
        cli.fail(prog, interrupted.replace("interrupted", "stopped by SIGTERM") if terminated else interrupted,
                 code=143 if terminated else 130)
