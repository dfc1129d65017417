"""DeepWarp presets (thesis ch. 4): the experiments of sec. 4.4 on procedural or local eyes.

    python -m experiments.deepwarp                     # eyes: offline, procedural
    python -m experiments.deepwarp --config=eyes_15    # fig. 4.6: one 15-degree correction
    python -m experiments.deepwarp --config=eyes_2d    # sec. 4.4.5: 2-D redirection
    python -m experiments.deepwarp --config=eyes_varied  # the model for real photos (gaze)
    python -m experiments.deepwarp --config=folder --config.data_dir=/path/to/captures

Each run trains every variant in `config.variants` (sec. 4.4.3: ss, ms, cfw, cfw_lcm) on the
same pairs and compares them with the identity baseline on held-out identities. The thesis
trains with Adam on batches of 128 built by the sampler of sec. 4.4.2 (4 angle bins x (24 easy +
8 hard)); `eyes` uses 4 x (6 + 2) and fewer steps so that it trains on a laptop CPU; the other
presets use the thesis's batch. Layer widths are ours (fig. 4.10 is not in the text): 5x5/16,
3x3/32, 3x3/16, 1x1/16 per warping module and 3x3/8, 3x3/8 for the LCM, about 51k parameters
(200 KB) for CFW+LCM, near the thesis's "250 Kb" models (sec. 4.5).
"""

import ml_collections

from experiments.configs.common import set_loop

PRESETS = ("eyes", "eyes_15", "eyes_2d", "eyes_varied", "folder")


def get_config(preset: str = "eyes") -> ml_collections.ConfigDict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_steps = 20_000
    config.learning_rate = 1e-3
    config.variants = ("ss", "ms", "cfw", "cfw_lcm")
    config.loss = "l2"  # or registration_l2 / registration_l1 (eq. 4.4.1)
    config.margin = 3  # k of sec. 4.4.6: targets are cut k pixels larger on every side

    # Data: "procedural" (thesis_jax.data.eyes) or "folder" (local captures, see load_eye_folder).
    config.dataset = "procedural"
    config.data_dir = ""
    config.crop_size = (51, 41)  # W x H (sec. 4.3.1)
    config.max_angle = 30.0  # redirections in [-max_angle, max_angle] (sec. 4.4.1)
    config.two_d = False
    config.angle_dims = 1
    config.fixed_angle = 0.0  # > 0: every pair is this vertical correction (sec. 4.4.3, "15")
    config.train_pairs = 40_000
    config.train_identities = 400
    config.test_pairs = 2_000
    config.test_identities = 60  # disjoint from the training identities (sec. 4.4.3)

    # Sampler of sec. 4.4.2: batch_size / bins_per_batch pairs per bin, hard_per_bin of them hard.
    config.batch_size = 128
    config.num_bins = 15
    config.bins_per_batch = 4
    config.hard_per_bin = 8
    config.hard_tilt = 8.0

    config.model = ml_collections.ConfigDict(
        {
            "variant": "cfw_lcm",  # set per trained variant
            "widths": (16, 32, 16, 16),
            "kernels": (5, 3, 3, 1),
            "lcm_widths": (8, 8),
        }
    )
    config.eval_batch_size = 256
    set_loop(config, log_every=100, eval_every=2000, checkpoint_every=2000, keep_checkpoints=2)
    config.num_pictures = 8

    if preset == "eyes":
        config.num_steps = 3000
        config.batch_size = 32
        config.hard_per_bin = 2
        config.train_pairs = 20_000
        config.train_identities = 200
        config.test_pairs = 1000
        set_loop(config, log_every=50, eval_every=1000, checkpoint_every=500)
    elif preset == "eyes_15":
        config.fixed_angle = 15.0
        config.variants = ("ss", "cfw", "cfw_lcm")
    elif preset == "eyes_2d":
        config.two_d = True
        config.angle_dims = 2
        config.variants = ("cfw", "cfw_lcm")
    elif preset == "eyes_varied":
        # CFW + LCM on the renderer's "varied" appearance: the model `experiments.gaze` uses
        # on real photos (its float16 export ships in thesis_jax/deepwarp/assets/).
        config.appearance = "varied"  # eyes.generate_eye_pairs(appearance=...); default "default"
        config.variants = ("cfw_lcm",)
        # The shipped model is the checkpoint of steps 7,000-15,000 whose rendered eyes move
        # most like the renderer's (`experiments.deepwarp_export --select`; README, "How far
        # the eyes move"): a checkpoint every 500 steps, the last 17 kept.
        config.num_steps = 15_000
        config.batch_size = 32
        config.hard_per_bin = 2
        config.train_pairs = 30_000
        config.train_identities = 600
        config.test_pairs = 1000
        set_loop(config, log_every=100, eval_every=5000, checkpoint_every=500, keep_checkpoints=17)
    elif preset == "folder":
        config.dataset = "folder"
        config.variants = ("cfw_lcm",)
        config.test_identities = 0  # the last 20% of people in the folder are held out
    return config
