"""`python -m tests.n4fields.baseline_run THREADS STEPS`: trains CNN-patch as the `shapes`
preset does (its rate, prior bias, 100 images) on THREADS CPU cores, then prints JSON: the
share of active ReLUs per layer and the spread of the output logits on fixed patches."""

import json
import os
import sys

if __name__ == "__main__":
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: int(sys.argv[1])]))

# imported after the affinity is set: XLA sizes its thread pool by the usable cores
import jax
import numpy as np

from thesis_jax import core, n4fields
from thesis_jax.n4fields.train import update

PRESETS = os.path.join(
    os.path.dirname(__file__), "..", "..", "experiments", "configs", "n4fields.py"
)


def main(steps: int, **overrides) -> dict:
    config = core.get_config("shapes", PRESETS, {"train_images": 100, **overrides})
    data = n4fields.load_split(config, "train", config.train_images, False)
    state = n4fields.init_network(config, data, "patch", member=0)  # as the binary's
    sampler = n4fields.PatchSampler(data.images, data.annotations, rotation="any", flip=True)
    step = jax.jit(update)
    for i in range(steps):
        batch = n4fields.make_batch(sampler(np.random.default_rng(i), 128), head="patch")
        state, _ = step(state, batch)
    probe = n4fields.make_batch(sampler(np.random.default_rng(10**6), 256), head="patch")
    out, layers = state.apply_fn(
        {"params": state.params}, probe["image"], train=False, capture_intermediates=True
    )
    active = {
        name: float(np.mean(np.asarray(value["__call__"][0]) > 0))
        for name, value in layers["intermediates"].items()
        if name.startswith(("conv", "fc"))
    }
    return {"active": active, "logit_spread": float(np.asarray(out).std(0).mean())}


if __name__ == "__main__":
    overrides = dict(arg.split("=") for arg in sys.argv[3:])  # typed by the preset's fields
    print(json.dumps(main(int(sys.argv[2]), **overrides)))
