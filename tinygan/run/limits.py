"""Bounds on every size and count a flag, a config or a file may ask for: checked before anything is allocated."""

MAX_UNITS = 16384           # units in one hidden layer
MAX_LAYERS = 16             # hidden layers in G or D
MAX_LATENT = 16384          # noise dimensions
MAX_PARAMS = 50_000_000     # parameters of G or of D (200 MB of float32 each)
MAX_BATCH = 65536           # rows per batch
MAX_STEPS = 10**9           # iterations, epochs, steps per epoch, intervals
MAX_THREADS = 1024          # BLAS threads
MAX_SEED = 2**32 - 2        # seeds (seed + 1 is a seed too)
MAX_SAMPLES = 10**9         # samples one command draws
MAX_EVAL = 100_000          # samples one evaluation scores (each is compared with every training image)
MAX_LABELS = 60000          # labelled digits of a semi-supervised run
MAX_LR = 1e6                 # learning rates (a huge one is allowed: the finite guard then stops the run)
MAX_LABEL = 2**31 - 1       # a label an IDX set may hold (--label-offset)
MAX_TEXT = 1 << 20          # characters of a JSON string stored in a checkpoint


def dense_params(sizes, extra=4):
    """Parameters of a chain of dense layers of these sizes (weights, biases, and `extra` per unit for norms)."""
    return sum(a * b + (1 + extra) * b for a, b in zip(sizes[:-1], sizes[1:]))


def layer_problem(sizes, what="layer sizes"):
    """Why a list of hidden layer sizes is out of bounds, or None."""
    if not isinstance(sizes, list) or not sizes or not all(type(n) is int and n > 0 for n in sizes):
        return f"a list of positive {what}"
    if len(sizes) > MAX_LAYERS:
        return f"at most {MAX_LAYERS} layers (got {len(sizes)})"
    if max(sizes) > MAX_UNITS:
        return f"{what} of at most {MAX_UNITS} units (got {max(sizes)})"
    return None
