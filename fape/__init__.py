"""fape: pose-conditioned face synthesis (FaPE-GAN) and expression classifiers for balancing
facial-expression datasets."""

__version__ = "0.1.0"
