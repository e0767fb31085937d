"""tinygan report RUN_DIR: redraw a run's curves.png (and internals.png if it was traced) from its log."""
import os

from ..run import cli
from ..run.plots import plot_curves
from ..run.report import draw_internals
from ..run.runs import read_log


def main(argv=None, prog=None):
    """Redraw the pictures of a run folder; a missing or damaged log is one line and exit code 2."""
    prog = cli.prog_name(prog, "report")
    p = cli.Parser(prog=prog, description="Redraw a run's curves.png and internals.png from its log.jsonl.")
    p.add_argument("run", metavar="RUN_DIR", help="a training run's --out folder")
    args = p.parse_args(argv)
    log = os.path.join(args.run, "log.jsonl")
    try:
        if not os.path.isfile(log):
            raise cli.UsageError(f"{log} does not exist: give the --out folder of a training run")
        records, warning = read_log(log)
        if warning:
            print(f"{prog}: warning: {warning}")
        written = [os.path.join(args.run, "curves.png")]
        plot_curves(records, written[0], title=f"training curves: {args.run}")
        if any("trace" in r for r in records):
            written.append(os.path.join(args.run, "internals.png"))
            draw_internals(records, written[1])
    except cli.UsageError as e:
        cli.fail(prog, e)
    except OSError as e:
        cli.fail(prog, cli.write_error(e))
    for path in written:
        print(f"wrote {path}")
