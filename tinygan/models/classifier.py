"""An MNIST digit classifier MLP on tinygan's own layers: the feature extractor for evaluating GANs."""
from ..engine.backend import Backend, get_backend, xp_of
from .checkpoint import load_classifier_weights
from ..engine.layers import Dense, Dropout, ReLU, Sequential

SIZES = (784, 512, 256, 10)  # input, hidden, features (penultimate), classes
DROPOUT = 0.2


def build_classifier(be=None, dropout=DROPOUT):
    """784 -> 512 -> 256 (features) -> 10 logits, ReLU and dropout after each hidden layer."""
    be = be or get_backend()
    layers = []
    for n_in, n_out in zip(SIZES[:-2], SIZES[1:-1]):
        layers += [Dense(n_in, n_out, be=be), ReLU(), Dropout(dropout, be=be)]
    layers.append(Dense(SIZES[-2], SIZES[-1], be=be))
    return Sequential(*layers, be=be)


def load_classifier(be=None, path=None):
    """The classifier with the shipped weights (tinygan/models/weights/classifier.npz, or path), in eval mode."""
    be = be or get_backend()
    # Built on a backend of its own: the initial weights it draws (then overwritten) come from a generator
    # of their own, so loading the classifier never moves a training run's random stream.
    model = build_classifier(Backend(be.name, be.dtype.name, seed=0))
    model.load_state_dict(load_classifier_weights(path))
    return model.eval()


def logits_and_features(model, x):
    """Forward a batch, returning (logits, features): features feed the last Dense layer."""
    # x: (B, 784) on the device -> logits: (B, 10), features: (B, 256)
    for layer in model.layers[:-1]:
        x = layer.forward(x)
    return model.layers[-1].forward(x), x


def softmax(z):
    """Row-wise softmax of logits, shifted by the row max so exp never overflows."""
    xp = xp_of(z)
    e = xp.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict(model, images, batch=2000):
    """(probs (N, 10), features (N, 256)) as host arrays, for images in [0, 1] of shape (N, 784) or (N, 28, 28)."""
    be = model.be
    was_training = model.layers[0].training
    model.eval()  # dropout off: predictions are deterministic
    n = len(images)
    probs, feats = [], []
    for i in range(0, n, batch):
        x = be.asarray(images[i:i + batch]).reshape(-1, SIZES[0])  # (b, 784), backend dtype
        logits, f = logits_and_features(model, x)
        probs.append(be.to_host(softmax(logits)))
        feats.append(be.to_host(f))
    model.train(was_training)
    if not probs:
        raise ValueError("predict got no images (N = 0)")
    xp = xp_of(probs[0])  # host arrays: numpy
    return xp.concatenate(probs), xp.concatenate(feats)


def accuracy(model, images, labels):
    """Fraction of images (N, 784) or (N, 28, 28) in [0, 1] whose top class is the label."""
    probs, _ = predict(model, images)
    return float((probs.argmax(1) == labels).mean())
