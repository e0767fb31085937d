"""The commands of `tinygan` (and of the scripts in examples/): train, sample, evaluate, report."""
