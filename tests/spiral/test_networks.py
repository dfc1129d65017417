"""SPIRAL policy and critic (fig. A.2, A.3; app. A.2): one head per action component with the
right number of logits, valid and row-major spatial samples, log-probs and entropies that agree
between sampling, teacher forcing, a numpy recomputation and a time-batched unroll, a blind
policy that ignores the canvas, and critics that depend on what they should.

Most tests share one small conditional grayscale paint policy (the MNIST reconstruction setting,
sec. 6.4.3) and one batch size, so each jitted function compiles once."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.spiral import networks
from thesis_jax.spiral.envs import spec
from thesis_jax.spiral.envs.mujoco_scenes import scenes_action_spec
from thesis_jax.spiral.networks import Critic, PolicyConfig, PolicyInputs

GRID = 8
PAINT = spec.paint_action_spec(spec.PaintConfig(grid_size=GRID, pressure_levels=4, grayscale=True))
SIZE = 16  # canvas side
BATCH = 64
SMALL = PolicyConfig(
    conditional=True,
    channels=8,
    encoder_size=4,
    encoder_blocks=1,
    embedding_size=32,
    lstm_size=32,
    condition_mlp=(16,),
    update_mlp=(16,),
    decoder_blocks=1,
)

step = jax.jit(networks.policy_step, static_argnums=1)
evaluate = jax.jit(networks.policy_evaluate, static_argnums=1)
logits_of = jax.jit(networks.action_logits, static_argnums=1)


def random_inputs(seed: int, target: bool = True) -> PolicyInputs:
    rng = np.random.default_rng(seed)
    last = np.stack([rng.integers(0, n, BATCH) for n in PAINT.values()], -1)
    shape = (BATCH, SIZE, SIZE, 1)
    return PolicyInputs(
        jnp.asarray(rng.random(shape), jnp.float32),
        jnp.asarray(last, jnp.int32),
        jnp.asarray(rng.random(shape), jnp.float32) if target else None,
    )


def random_carry(seed: int) -> networks.LSTMCarry:
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal((BATCH, 32)), jnp.float32) for _ in range(2))


def randomize_heads(params, scale: float = 1.0, seed: int = 0):
    """Adds noise to the (zero-initialised) logit layers so that the policy is not uniform."""
    rng = np.random.default_rng(seed)

    def noisy(path, leaf):
        if any("_logits" in str(getattr(key, "key", "")) for key in path):
            return leaf + scale * rng.standard_normal(leaf.shape).astype(np.float32)
        return leaf

    return jax.tree_util.tree_map_with_path(noisy, params)


def assert_trees_close(a, b, **tolerances):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **tolerances)


@pytest.fixture(scope="module")
def policy():
    module = networks.make_policy(PAINT, SMALL)
    return module, networks.init_policy(jax.random.key(0), module, (SIZE, SIZE, 1))


@pytest.mark.parametrize(
    "action_spec, channels, grids",
    [
        (spec.paint_action_spec(spec.PaintConfig()), 3, {"control": 32, "end": 32}),
        (spec.paint_action_spec(spec.PaintConfig(grayscale=True)), 1, {"control": 32, "end": 32}),
        (scenes_action_spec(), 3, {"location": 16}),
    ],
    ids=["paint", "paint-grayscale", "mujoco"],
)
def test_one_head_per_component_with_grid_squared_logits(action_spec, channels, grids):
    """The default network on 64 x 64 canvases, traced without compiling."""
    assert networks.spatial_components(action_spec) == grids
    config = PolicyConfig()
    module = networks.make_policy(action_spec, config)
    inputs = PolicyInputs(
        jax.ShapeDtypeStruct((2, 64, 64, channels), jnp.float32),
        jax.ShapeDtypeStruct((2, len(action_spec)), jnp.int32),
    )
    carry = networks.initial_carry(2, config.lstm_size)
    params = jax.eval_shape(module.init, jax.random.key(0), inputs, carry, rng=jax.random.key(1))
    decoder = params["params"]["decoder"]
    for name in action_spec:
        assert ("final" in decoder[f"{name}_logits"]) == (name in grids), name
    logits = jax.eval_shape(
        functools.partial(networks.action_logits, module=module),
        params,
        inputs=inputs,
        carry=carry,
        actions=inputs.last_action,
    )
    assert {k: v.shape for k, v in logits.items()} == {k: (2, n) for k, n in action_spec.items()}
    out = jax.eval_shape(
        functools.partial(networks.policy_step, module=module),
        params,
        inputs=inputs,
        carry=carry,
        rng=jax.random.key(0),
    )
    assert out.actions.shape == (2, len(action_spec)) and out.actions.dtype == jnp.int32
    assert out.log_prob.shape == out.entropy.shape == out.value.shape == (2,)
    assert out.carry[1].shape == (2, config.lstm_size)


def test_spatial_components_need_a_listed_name_and_a_square_size():
    action_spec = {"end": 49, "location": 50, "size": 16, "control": 1}
    assert networks.spatial_components(action_spec) == {"end": 7}
    assert networks.spatial_components(action_spec, names=("size",)) == {"size": 4}


def test_untrained_policy_is_uniform_and_samples_every_choice(policy):
    module, params = policy
    total = sum(math.log(n) for n in PAINT.values())
    samples = []
    for seed in range(5):
        out = step(params, module, random_inputs(seed), random_carry(seed), jax.random.key(seed))
        np.testing.assert_allclose(out.entropy, total, rtol=1e-5)
        np.testing.assert_allclose(out.log_prob, -total, rtol=1e-5)
        samples.append(np.asarray(out.actions))
    samples = np.concatenate(samples)
    for i, (name, n) in enumerate(PAINT.items()):
        assert samples[:, i].min() >= 0 and samples[:, i].max() < n, name
        if n <= 6:
            assert len(np.unique(samples[:, i])) == n, name


def test_sampled_actions_are_valid_under_peaked_logits(policy):
    module, params = policy
    params = randomize_heads(params, scale=30.0)
    for seed in range(3):
        out = step(params, module, random_inputs(seed), random_carry(seed), jax.random.key(seed))
        actions = np.asarray(out.actions)
        assert np.all(np.isfinite(out.log_prob))
        for i, (name, n) in enumerate(PAINT.items()):
            assert actions[:, i].min() >= 0 and actions[:, i].max() < n, name


def test_spatial_logits_are_row_major(policy):
    """A final 3x3 conv that reads only the pixel above puts all mass on row 0 of the grid
    (the zero padding above it): cells 0 .. grid - 1 when cell = row * grid + col."""
    module, params = policy
    head = params["params"]["decoder"]["end_logits"]
    final = np.zeros_like(head["final"]["kernel"])
    final[0, 1, 0, 0] = -30.0  # kernel row 0, column 1: the input pixel at (row - 1, col)
    head = {
        **head,
        "transpose_0": {
            "kernel": jnp.zeros_like(head["transpose_0"]["kernel"]),
            "bias": jnp.ones(SMALL.channels),  # every pixel of the last feature map is 1
        },
        "final": {**head["final"], "kernel": jnp.asarray(final)},
    }
    decoder = {**params["params"]["decoder"], "end_logits": head}
    params = {"params": {**params["params"], "decoder": decoder}}
    inputs, carry = random_inputs(1), random_carry(1)
    end = np.asarray(step(params, module, inputs, carry, jax.random.key(0)).actions[:, 1])
    assert end.max() < GRID
    assert len(np.unique(end)) == GRID  # every column of row 0 is reachable
    logits = logits_of(params, module, inputs, carry, inputs.last_action)["end"]
    grid = np.asarray(logits).reshape(BATCH, GRID, GRID)
    np.testing.assert_allclose(grid[:, 0], 0.0)
    np.testing.assert_allclose(grid[:, 1:], -30.0, rtol=1e-6)


def test_log_prob_and_entropy_match_teacher_forcing_and_numpy(policy):
    module, params = policy
    params = randomize_heads(params)
    inputs, carry = random_inputs(3), random_carry(3)
    sampled = step(params, module, inputs, carry, jax.random.key(7))
    scored = evaluate(params, module, inputs, carry, sampled.actions)
    assert_trees_close(sampled, scored, rtol=1e-5, atol=1e-5)

    logits = logits_of(params, module, inputs, carry, sampled.actions)
    actions = np.asarray(sampled.actions)
    log_prob, entropy = np.zeros(BATCH), np.zeros(BATCH)
    for i, name in enumerate(PAINT):
        z = np.asarray(logits[name], np.float64)
        log_p = z - z.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        log_prob += log_p[np.arange(BATCH), actions[:, i]]
        entropy -= (np.exp(log_p) * log_p).sum(-1)
    # float32 log-softmaxes of logits in the tens, against float64 from logits that another
    # compiled program computed: last digits differ, by more on CPUs whose vector units give
    # XLA other kernels (2.4e-4 seen on an AVX-512 machine), hence the absolute tolerance.
    np.testing.assert_allclose(sampled.log_prob, log_prob, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sampled.entropy, entropy, rtol=1e-5, atol=1e-3)
    assert np.all(entropy > 0) and np.all(entropy < sum(math.log(n) for n in PAINT.values()))


def test_policy_depends_on_target_and_canvas_unless_blind(policy):
    blind = networks.make_policy(PAINT, SMALL._replace(blind=True))  # same parameter layout
    a, other = random_inputs(4), random_inputs(5)
    carry, actions = random_carry(4), random_inputs(6).last_action
    for module, params in [policy, (blind, policy[1])]:
        params = randomize_heads(params)
        out = evaluate(params, module, a, carry, actions)
        new_canvas = evaluate(params, module, a._replace(canvas=other.canvas), carry, actions)
        new_target = evaluate(params, module, a._replace(target=other.target), carry, actions)
        same = [np.array_equal(x, y) for x, y in zip(out, new_canvas, strict=True)]
        assert all(same) if module.config.blind else not any(same[1:4])
        assert not np.allclose(out.log_prob, new_target.log_prob)
        assert not np.allclose(out.value, new_target.value)


def test_unroll_matches_stepping(policy):
    module, params = policy
    params = randomize_heads(params)
    steps = 3
    per_step = [random_inputs(10 + t) for t in range(steps)]
    target = per_step[0].target
    canvases = jnp.stack([x.canvas for x in per_step])
    last_actions = jnp.stack([x.last_action for x in per_step])
    actions = jnp.stack([random_inputs(20 + t).last_action for t in range(steps)])

    carry, expected = random_carry(5), []
    for t in range(steps):
        out = evaluate(
            params, module, PolicyInputs(canvases[t], last_actions[t], target), carry, actions[t]
        )
        expected.append((out.log_prob, out.entropy, out.value))
        carry = out.carry
    unroll = jax.jit(networks.unroll, static_argnums=1)
    got = unroll(params, module, canvases, last_actions, actions, target, random_carry(5))
    for got_x, want_x in zip(got, zip(*expected, strict=True), strict=True):
        assert got_x.shape == (steps, BATCH)
        np.testing.assert_allclose(got_x, jnp.stack(want_x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("blind", [False, True])
def test_input_conv_equals_one_convolution_over_all_planes(blind):
    """The encoder's first convolution, computed a group of planes at a time (coordinates once,
    the target once per episode), equals `nn.Conv` over their concatenation in value and
    gradient, with the same parameters; a blind policy's canvas counts as zeros."""
    steps, episodes = 3, 2
    keys = jax.random.split(jax.random.key(1), 3)
    canvas = jax.random.uniform(keys[0], (steps * episodes, SIZE, SIZE, 1))
    target = jax.random.uniform(keys[1], (episodes, SIZE, SIZE, 1))
    ours = networks.InputConv(5)
    theirs = nn.Conv(5, (5, 5))
    params = ours.init(keys[2], canvas, target, blind)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, theirs.init(keys[2], jnp.zeros((1, SIZE, SIZE, 4)))
    )
    params = jax.tree.map(lambda p: jax.random.normal(keys[2], p.shape), params)

    def reference(params, canvas):
        line = jnp.linspace(-1.0, 1.0, SIZE)
        rows, cols = jnp.meshgrid(line, line, indexing="ij")
        planes = jnp.broadcast_to(jnp.stack([rows, cols], -1), (steps * episodes, SIZE, SIZE, 2))
        seen = jnp.zeros_like(canvas) if blind else canvas
        targets = jnp.tile(target, (steps, 1, 1, 1))  # time-major: row i sees target i % B
        return theirs.apply(params, jnp.concatenate([planes, seen, targets], -1))

    def mine(params, canvas):
        return ours.apply(params, canvas, target, blind)

    np.testing.assert_allclose(mine(params, canvas), reference(params, canvas), atol=1e-4)
    grads = [
        jax.grad(lambda p, f=f: jnp.sum(jnp.sin(f(p, canvas))))(params) for f in (mine, reference)
    ]
    for a, b in zip(*map(jax.tree.leaves, grads), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-4)


def test_policy_rejects_bad_inputs(policy):
    module, params = policy
    inputs, carry, key = random_inputs(0), random_carry(0), jax.random.key(0)

    def trace(inputs, carry, rng):
        return jax.eval_shape(lambda: networks.policy_step(params, module, inputs, carry, rng))

    with pytest.raises(ValueError, match="needs `target`"):
        trace(inputs._replace(target=None), carry, key)
    with pytest.raises(ValueError, match="exactly one"):
        trace(inputs, carry, None)
    with pytest.raises(AssertionError):  # last_action misses a component
        trace(inputs._replace(last_action=inputs.last_action[:, 1:]), carry, key)
    with pytest.raises(ValueError, match="not whole steps"):  # 64 canvases, 3 targets
        trace(inputs._replace(target=inputs.target[:3]), carry, key)
    unconditional = networks.make_policy(PAINT, SMALL._replace(conditional=False))
    with pytest.raises(ValueError, match="unconditional"):
        jax.eval_shape(unconditional.init, key, inputs, carry, rng=key)


def test_default_critic_is_dcgan_sized():
    images = jax.ShapeDtypeStruct((5, 64, 64, 3), jnp.float32)
    critic = Critic(conditional=True)
    params = jax.eval_shape(critic.init, jax.random.key(0), images, images)
    kernels = [params["params"][f"conv_{i}"]["kernel"].shape for i in range(4)]
    assert kernels == [(4, 4, 6, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 512)]
    assert params["params"]["output"]["kernel"].shape == (4 * 4 * 512, 1)
    assert jax.eval_shape(critic.apply, params, images, images).shape == (5,)


@pytest.mark.parametrize("conditional", [False, True])
def test_critic_scores_each_image_on_its_own(conditional):
    critic = Critic(conditional=conditional, channels=(8, 16, 32))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((3, 32, 32, 3)), jnp.float32)
    target = jnp.asarray(rng.random((3, 32, 32, 3)), jnp.float32) if conditional else None
    score = jax.jit(critic.apply)
    params = networks.init_critic(jax.random.key(0), critic, (32, 32, 3))
    out = score(params, images, target)
    assert out.shape == (3,) and out.dtype == jnp.float32
    changed = score(params, images.at[0].set(1.0 - images[0]), target)
    assert out[0] != changed[0]
    np.testing.assert_allclose(out[1:], changed[1:], rtol=1e-5, atol=1e-6)
    if conditional:
        new_target = score(params, images, 1.0 - target)
        assert not np.any(np.isclose(out, new_target))
        with pytest.raises(ValueError, match="needs `target`"):
            critic.apply(params, images)
    else:
        with pytest.raises(ValueError, match="unconditional"):
            critic.apply(params, images, images)
