"""SPIRAL: synthesizing programs for images using reinforced adversarial learning (thesis ch. 6).

Pure functions over pytrees:

    state = spiral.init(rng, config)                     # SpiralState: policy, critic, replay
    state, metrics = spiral.update(state, batch)         # jit it as it is: statics in hparams
    value, (metrics, _) = spiral.loss(params, episodes, rng, apply_fn=..., hparams=...,
                                      model_state={"critic": critic_params})   # A2C
    value, (metrics, _) = spiral.critic_loss(params, {"real", "fake"}, rng, apply_fn=...,
                                             hparams=...)                      # WGAN-GP
    episodes = spiral.predict(params, {"target": images}, apply_fn=..., hparams=..., rng=rng)

A batch is {"target": [B, H, W, C]} (JaxPaint paints inside `update`), plus the painted episodes
("canvases", "actions", ... batch-major) when a host renderer painted them (`train` docstring).

train           the pure functions above
networks        the policy with its autoregressive action decoder, and the WGAN-GP critic
losses          A2C, V-trace, WGAN-GP with the centring term, auxiliary rewards
envs            LibMyPaint, JaxPaint and MujocoScenes renderers behind one interface
renderers       a preset's renderer: configs, action spec, host environment factory
actors          episodes painted on the host, and by a state's policy (evaluation, pictures)
workers         the distributed system's hub, actors and learners without Ray
distributed     the same on Ray (fig. 6.2b)
pbt             population-based training (app. A.3)
experiment      one experiment from a preset: targets, state, a training run, PBT members
report          samples, episode GIFs, results.json, fig. 6.9a's curves
export          a trained agent in one file (float16), and the shipped ones ("mnist")
readability     a digit reader trained on real MNIST: does a reconstruction read as its digit?
scenes_dataset  the MuJoCo Scenes dataset (sec. 6.4.1), generated and cached on disk
mcmc            the blocked Metropolis-Hastings baseline of sec. 6.4.6 (fig. 6.10)
mcmc_experiment its chains on held-out MuJoCo scenes, resumable, and their report
"""

from thesis_jax.spiral import envs
from thesis_jax.spiral.export import Agent, load_agent, save_agent, with_agent
from thesis_jax.spiral.mcmc import MHResult, blocked_mh, blocked_mh_curves
from thesis_jax.spiral.scenes_dataset import load_mujoco_scenes
from thesis_jax.spiral.train import (
    Hparams,
    SpiralState,
    Trajectory,
    Tuned,
    critic_loss,
    init,
    loss,
    make_hparams,
    predict,
    rollout,
    update,
    with_tuned,
)

__all__ = [
    "Agent",
    "Hparams",
    "MHResult",
    "SpiralState",
    "Trajectory",
    "Tuned",
    "blocked_mh",
    "blocked_mh_curves",
    "critic_loss",
    "envs",
    "init",
    "load_agent",
    "load_mujoco_scenes",
    "loss",
    "make_hparams",
    "predict",
    "rollout",
    "save_agent",
    "update",
    "with_agent",
    "with_tuned",
]
