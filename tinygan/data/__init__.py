"""Data: the IDX format, finding and checking MNIST, downloads, the Dataset sampler, augmentation; imports run and engine."""
