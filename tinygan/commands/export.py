"""tinygan export: a recognizer.npz from any checkpoint of `tinygan ssl` (its averaged D as a plain MLP)."""
import os

from ..run import cli
from . import guarded
from ..engine.backend import Backend
from ..models.checkpoint import SSL_FIELDS, CheckpointError, load_checkpoint, read_checkpoint
from ..models.recognizer import RecognizerError, export_recognizer, load_recognizer
from ..models.ssl import SSLGAN


def parser(prog=None):
    p = cli.Parser(prog=prog, description="Write the recognizer (recognizer.npz) of a semi-supervised GAN's "
                                          "checkpoint, as tinygan ssl does with every checkpoint.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="a checkpoint.npz of tinygan ssl")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: recognizer.npz beside the checkpoint)")
    return p


def main(argv=None, prog=None):
    """Parse flags and export; a bad checkpoint or path is one line and exit code 2."""
    guarded(export, argv, cli.prog_name(prog, "tinygan export"), also=(RecognizerError,))


def recognizer_info(gan, record=None):
    """What a recognizer file says about its run: labels, seed, epochs done, the last test error measured."""
    c = gan.config
    return {"labels": c["labels"], "seed": c["seed"], "epochs": gan.iteration // c["steps_per_epoch"],
            "test_error": record["test_err"] if record else None}


def ssl_checkpoint(path):
    """(arrays, config) of a semi-supervised GAN's checkpoint; a GAN's is refused by name."""
    arrays, config = read_checkpoint(path)
    if not isinstance(config, dict) or config.get("kind") != "ssl":
        raise CheckpointError(f"checkpoint {path!r} is a GAN's from train_mnist.py (tinygan train), not a "
                              "semi-supervised GAN's: only tinygan ssl makes recognizers")
    return arrays, config


def export_checkpoint(checkpoint, out, record=None):
    """Rebuild the semi-supervised GAN of a checkpoint and write its recognizer to out; returns the gan."""
    _, config = ssl_checkpoint(checkpoint)
    gan = SSLGAN(config, Backend("numpy", "float32", seed=0))
    load_checkpoint(checkpoint, gan, SSL_FIELDS)
    export_recognizer(out, gan, recognizer_info(gan, record))
    return gan


def export(argv, prog):
    args = parser(prog).parse_args(argv)
    out = args.out or os.path.join(os.path.dirname(args.checkpoint) or ".", "recognizer.npz")
    if os.path.isdir(out):
        raise cli.UsageError(f"--out {out!r} is a folder: give a file name, e.g. {os.path.join(out, 'recognizer.npz')}")
    gan = cli.named("--checkpoint", CheckpointError, export_checkpoint, args.checkpoint, out)
    print(f"wrote {out}: {len(gan.config.get('classes', range(10)))} classes, epoch "
          f"{gan.iteration // gan.config['steps_per_epoch']}; read images with: tinygan read --recognizer {out} PATH...")


def finished(prog, args, arrays, config):
    """True (after saying so) when a resumed run already reached its target: it says where its recognizer is,
    writing it from the checkpoint if it is missing or older than the checkpoint."""
    it, steps = int(arrays["iteration"]), config["steps_per_epoch"]
    done = it // steps
    if it % steps or (args.epochs or config["epochs"]) != done:
        return False
    rec = os.path.join(os.path.dirname(args.resume) or ".", "recognizer.npz")
    try:
        fresh = load_recognizer(rec)[1].get("iteration") == it
    except RecognizerError:
        fresh = False
    if not fresh:
        export_checkpoint(args.resume, rec)
    print(f"{prog}: this run is finished: {done} of {done} epochs done; its recognizer is {rec} "
          f"({cli.shell(prog, 'ssl', '--resume', args.resume, '--epochs')} N, N above {done}, trains further)")
    return True
