"""The from-scratch engine: array backend, layers, losses, optimizers, gradient checker; imports nothing else of tinygan."""
from .backend import Backend, BackendError, get_backend, set_backend
from .gradcheck import GradcheckError, check_loss, check_module, gradcheck
from .layers import Dense, Dropout, GaussianNoise, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh
from .losses import bce, bce_with_logits, feature_matching, log_sum_exp, softmax_cross_entropy, unlabelled_loss
from .norm import BatchNorm, WeightNormDense, init_from_data
from .optim import SGD, Adam, linear_decay
from .regularizers import class_balance, consistency, entropy, pull_away
