#!/usr/bin/env bash
# Mutation testing of the semi-supervised path, run by hand (not in CI); see docs/testing.md.
#   tests/mutmut_ssl.sh run            all its mutants (one worker: the machine is shared)
#   tests/mutmut_ssl.sh run NAME...    only these mutants (shell patterns such as 'tinygan.engine.norm.*' work)
#   tests/mutmut_ssl.sh results        the survivors;  tests/mutmut_ssl.sh show NAME   one mutant's diff
# setup.cfg's [mutmut] section is the core's, and mutmut reads only that one section, so this runs mutmut in its own
# copy of the checkout (build/mutmut-ssl/, or $MUTMUT_SSL_DIR) with its own setup.cfg. `run` names the mutants it
# runs (below), and mutmut runs named mutants again even when they have a result: a stopped run starts over.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTMUT_SSL_DIR:-$root/build/mutmut-ssl}
mkdir -p "$work"
rm -rf "$work/tinygan" "$work/tests" "$work/examples"
cp -r "$root/tinygan" "$root/tests" "$root/examples" "$root/pyproject.toml" "$work/"
find "$work" -path "$work/mutants" -prune -o -name __pycache__ -type d -exec rm -rf {} +
# Mutated: the semi-supervised model, the normalised layers, the losses file (its semi-supervised functions are the
# ones run, below) and the command's epoch order. The tests: the semi-supervised ones, the training tests included
# (examples/ is copied into mutants/ for them), less those that repeat a quick run only to check a refusal or resume
# in mid-epoch (the end-of-epoch resume stays). A timeout at 4 times a mutant's tests' measured time (mutmut's default
# is 15): a mutated step counter can make a training test loop forever, and the machine is shared.
cat > "$work/setup.cfg" <<'CFG'
[mutmut]
source_paths = tinygan/
only_mutate =
    tinygan/models/ssl.py
    tinygan/engine/norm.py
    tinygan/engine/losses.py
    tinygan/commands/ssl.py
also_copy =
    examples/
pytest_add_cli_args_test_selection =
    tests/test_ssl_pins.py
    tests/test_ssl_engine.py
    tests/test_ssl_oracle.py
    tests/test_ssl_train.py
    tests/test_gradients.py
pytest_add_cli_args =
    -m
    not slow
    -p
    no:cacheprovider
    --deselect
    tests/test_ssl_train.py::test_the_gan_tools_refuse_a_semi_supervised_checkpoint
    --deselect
    tests/test_ssl_train.py::test_a_second_run_never_replaces_the_first
    --deselect
    tests/test_ssl_train.py::test_a_signal_mid_epoch_saves_and_the_resume_is_exact
timeout_multiplier = 4
process_isolation = forkserver
CFG
# The mutants that are run: every one of ssl.py and norm.py; of losses.py the semi-supervised losses; of
# commands/ssl.py the epoch order (the rest of that file is flags, files and printing: plumbing).
SSL_MUTANTS=(
    "tinygan.models.ssl.*"
    "tinygan.engine.norm.*"
    "tinygan.engine.losses.x_log_sum_exp__mutmut_*"
    "tinygan.engine.losses.x_softplus__mutmut_*"
    "tinygan.engine.losses.x_unlabelled_loss__mutmut_*"
    "tinygan.engine.losses.x_feature_matching__mutmut_*"
    "tinygan.commands.ssl.x_epoch_order__mutmut_*"
)
cd "$work"
export OPENBLAS_NUM_THREADS=1
if [ "${1:-}" = run ]; then
    shift
    if [ $# -eq 0 ]; then set -- "${SSL_MUTANTS[@]}"; fi
    exec mutmut run --max-children 1 "$@"
fi
exec mutmut "$@"
