"""TFv6 training: canonical samples -> model inputs/targets (inputs, views, labels), typed configuration,
source mixing, the training loop with checkpoints and validation on the benchmarks' own metrics."""
