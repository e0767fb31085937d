"""tinygan: a GAN engine with hand-written backward passes on NumPy (CPU) or CuPy (GPU)."""
from .backend import Backend, BackendError, get_backend, set_backend
from .gradcheck import GradcheckError, check_loss, check_module, gradcheck
from .layers import Dense, Dropout, GaussianNoise, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh
from .norm import BatchNorm, WeightNormDense, init_from_data
from .losses import bce, bce_with_logits, softmax_cross_entropy
from .optim import SGD, Adam

__version__ = "0.1.0"
