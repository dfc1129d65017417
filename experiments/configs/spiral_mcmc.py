"""Presets of the blocked Metropolis-Hastings baseline on MuJoCo Scenes (thesis sec. 6.4.6).

    python -m experiments.spiral_mcmc                     # default: 16 images x 2000 evaluations
    python -m experiments.spiral_mcmc --config=thesis     # fig. 6.10: 100 images x 10,000

The generic fields map onto the experiment as follows:

    num_steps   evaluations (renders) per held-out image: the length of each MH chain,
                the x axis of fig. 6.10
    batch_size  number of held-out images, each with its own chain (the thesis uses 100)
    seed        chain i draws from `numpy.random.default_rng([seed, i])`
    data_dir    where the MuJoCo Scenes cache goes ("" = ~/.cache/thesis_jax/mujoco_scenes)

The held-out targets are scenes 0..batch_size-1 of `holdout_seed` (`HOLDOUT_SEED`), so a preset
with fewer images uses a prefix of a larger one's targets.
"""

import ml_collections

PRESETS = ("default", "thesis")


def _base() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 2000  # evaluations (renders) per image
    config.batch_size = 16  # held-out images
    config.data_dir = ""  # MuJoCo Scenes cache root ("" = default cache)
    config.holdout_seed = 1  # thesis_jax.spiral.scenes_dataset.HOLDOUT_SEED
    config.image_size = 64
    config.max_objects = 20  # blocks in the latent trace (the SPIRAL episode length)
    config.likelihood_variance = 0.25  # fixed diagonal covariance of the Gaussian likelihood
    # Evaluation counts at which results.json reports the mean curves (those <= num_steps, plus
    # num_steps itself).
    config.report_at = (1, 10, 100, 1000, 2000, 10_000)
    config.num_reconstructions = 16  # targets shown in reconstructions.png
    return config


def get_config(preset: str = "default") -> ml_collections.ConfigDict:
    config = _base()
    if preset == "default":
        pass  # offline: 32,000 renders at 1-3 ms each (OSMesa, one core), under 2 minutes
    elif preset == "thesis":
        config.batch_size = 100
        config.num_steps = 10_000
    else:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return config
