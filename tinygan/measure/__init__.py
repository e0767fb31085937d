"""Measurement: metrics, GAN evaluation, supervised fits, the few-label experiment, the tracer; imports models and below."""
