"""tinygan: a GAN engine with hand-written backward passes on NumPy (CPU) or CuPy (GPU).

The names below load on first use, so `import tinygan` (and the `tinygan` command, which a Ctrl-C may stop while
it starts) costs nothing until a name is used."""
import importlib

_EXPORTS = {  # name -> the module that defines it
    **dict.fromkeys(["Backend", "BackendError", "get_backend", "set_backend"], ".engine.backend"),
    **dict.fromkeys(["CheckpointError", "load_checkpoint", "load_gan", "save_checkpoint"], ".models.checkpoint"),
    **dict.fromkeys(["MNISTDataError", "load_mnist"], ".data.mnist"),
    **dict.fromkeys(["Dataset"], ".data.dataset"),
    **dict.fromkeys(["evaluate_gan", "evaluate_images"], ".measure.evaluation"),
    **dict.fromkeys(["GAN", "PRESETS", "make_config"], ".models.gan"),
    **dict.fromkeys(["GradcheckError", "check_loss", "check_module", "gradcheck"], ".engine.gradcheck"),
    **dict.fromkeys(["read_idx", "write_idx"], ".data.idx"),
    **dict.fromkeys(["Dense", "Dropout", "GaussianNoise", "LeakyReLU", "ReLU", "Sequential", "Sigmoid", "Softplus",
                     "Tanh"], ".engine.layers"),
    **dict.fromkeys(["bce", "bce_with_logits", "feature_matching", "log_sum_exp", "softmax_cross_entropy",
                     "unlabelled_loss"], ".engine.losses"),
    **dict.fromkeys(["BatchNorm", "WeightNormDense", "init_from_data"], ".engine.norm"),
    **dict.fromkeys(["SGD", "Adam"], ".engine.optim"),
    **dict.fromkeys(["RecognizerError", "export_recognizer", "load_recognizer", "read_digits"], ".models.recognizer"),
    **dict.fromkeys(["load_images"], ".data.sources"),
    **dict.fromkeys(["SSLGAN", "make_ssl_config"], ".models.ssl"),
}

__version__ = "0.1.0"

__all__ = [  # the engine, then what a training script or notebook needs (see README, "Use it from Python")
    "Backend", "BackendError", "get_backend", "set_backend",
    "Dense", "Dropout", "GaussianNoise", "LeakyReLU", "ReLU", "Sequential", "Sigmoid", "Softplus", "Tanh",
    "BatchNorm", "WeightNormDense", "init_from_data",
    "bce", "bce_with_logits", "softmax_cross_entropy", "log_sum_exp", "unlabelled_loss", "feature_matching",
    "SGD", "Adam",
    "GradcheckError", "check_loss", "check_module", "gradcheck",
    "GAN", "PRESETS", "make_config", "Dataset", "load_mnist", "MNISTDataError", "read_idx", "write_idx",
    "save_checkpoint", "load_checkpoint", "load_gan", "CheckpointError", "evaluate_gan", "evaluate_images",
    "SSLGAN", "make_ssl_config", "export_recognizer", "load_recognizer", "read_digits", "RecognizerError",
    "load_images",
]


def __getattr__(name):
    """Load an exported name from its module on first use."""
    if name in ("engine", "run", "data", "models", "measure", "commands"):  # tinygan.data.mnist and the like
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tinygan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
