"""Judging a generator: feature networks (MNIST classifier, InceptionV3), FID/KID/precision-recall, the monitor."""
