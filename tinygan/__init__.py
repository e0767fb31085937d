"""tinygan: a GAN engine with hand-written backward passes on NumPy (CPU) or CuPy (GPU)."""
from .engine.backend import Backend, BackendError, get_backend, set_backend
from .models.checkpoint import CheckpointError, load_checkpoint, load_gan, save_checkpoint
from .data.mnist import MNISTDataError, load_mnist
from .data.dataset import Dataset
from .measure.evaluation import evaluate_gan, evaluate_images
from .models.gan import GAN, PRESETS, make_config
from .engine.gradcheck import GradcheckError, check_loss, check_module, gradcheck
from .data.idx import read_idx, write_idx
from .engine.layers import Dense, Dropout, GaussianNoise, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh
from .engine.losses import bce, bce_with_logits, feature_matching, log_sum_exp, softmax_cross_entropy, unlabelled_loss
from .engine.norm import BatchNorm, WeightNormDense, init_from_data
from .engine.optim import SGD, Adam
from .models.recognizer import RecognizerError, export_recognizer, load_recognizer, read_digits
from .data.sources import load_images
from .models.ssl import SSLGAN, make_ssl_config

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
