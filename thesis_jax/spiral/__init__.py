"""SPIRAL: synthesizing programs for images using reinforced adversarial learning (thesis ch. 6).

envs            LibMyPaint, JaxPaint and MujocoScenes renderers behind one interface
scenes_dataset  the MuJoCo Scenes dataset (sec. 6.4.1), generated and cached on disk
mcmc            the blocked Metropolis-Hastings baseline of sec. 6.4.6 (fig. 6.10)
"""

from thesis_jax.spiral import envs
from thesis_jax.spiral.mcmc import MHResult, blocked_mh, blocked_mh_curves
from thesis_jax.spiral.scenes_dataset import load_mujoco_scenes

__all__ = ["MHResult", "blocked_mh", "blocked_mh_curves", "envs", "load_mujoco_scenes"]
