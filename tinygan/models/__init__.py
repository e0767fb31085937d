"""Models: the GAN, the semi-supervised GAN, the classifier, the recognizer, checkpoints; imports data, run and engine."""
