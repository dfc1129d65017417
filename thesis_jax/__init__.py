"""thesis_jax: N4-Fields, DeepWarp, DANN and SPIRAL (Y. Ganin's thesis) in JAX/Flax."""

__version__ = "0.1.0"
