"""ganjax: GAN training tricks as pure JAX functions, optax transforms and Flax modules."""

__version__ = "0.1.0"
