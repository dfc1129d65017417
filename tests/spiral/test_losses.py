"""SPIRAL objectives and rewards against hand-computed values and the expected gradient signs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.spiral import losses

TRANSFORMS = pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])


def _linear_critic(w, b):
    return lambda images, condition: images.reshape(images.shape[0], -1) @ w + b


def test_wgan_gp_linear_critic_matches_the_formula():
    # D(x) = <w, x> + b has gradient w everywhere: the penalty is gp_weight * (||w|| - 1)^2.
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2, 5, 2, 3, 1)).astype(np.float32)
    w = rng.normal(size=(6,)).astype(np.float32)
    b = 0.3

    def run(real, fake, key):
        return losses.wgan_gp_loss(
            _linear_critic(w, b), real, fake, key, gp_weight=7.0, centre_weight=2.0
        )

    loss, metrics = jax.jit(run)(real, fake, jax.random.key(1))
    d_real = real.reshape(5, -1) @ w + b
    d_fake = fake.reshape(5, -1) @ w + b
    penalty = (np.linalg.norm(w) - 1.0) ** 2
    centre = (0.5 * d_real.mean() + 0.5 * d_fake.mean()) ** 2
    expected = -d_real.mean() + d_fake.mean() + 7.0 * penalty + 2.0 * centre
    np.testing.assert_allclose(metrics["gradient_penalty"], penalty, rtol=1e-5)
    np.testing.assert_allclose(metrics["gradient_norm"], np.linalg.norm(w), rtol=1e-5)
    np.testing.assert_allclose(metrics["centre"], centre, rtol=1e-5)
    np.testing.assert_allclose(metrics["wasserstein"], d_real.mean() - d_fake.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], loss)


def test_wgan_gp_quadratic_critic_penalty_at_the_sampled_interpolates():
    # D(x) = 1/2 x^T A x + <w, x>: grad D(x_hat) = A x_hat + w at x_hat = eps real + (1-eps) fake.
    rng = np.random.default_rng(1)
    batch, dim = 8, 4
    a = rng.normal(size=(dim, dim))
    a = (a + a.T) / 2
    w = rng.normal(size=(dim,))
    real = rng.normal(size=(batch, dim))
    fake = rng.normal(size=(batch, dim))
    critic = lambda x, c: 0.5 * jnp.einsum("bi,ij,bj->b", x, a, x) + x @ w
    loss_fn = jax.jit(
        functools.partial(losses.wgan_gp_loss, critic, gp_weight=1.0, centre_weight=0.0)
    )
    key = jax.random.key(3)
    _, metrics = loss_fn(real, fake, key)
    eps = np.asarray(jax.random.uniform(key, (batch,)))[:, None]
    interpolates = eps * real + (1 - eps) * fake
    norms = np.linalg.norm(interpolates @ a + w, axis=1)
    np.testing.assert_allclose(metrics["gradient_penalty"], np.mean((norms - 1) ** 2), rtol=1e-4)

    # Independent of the eps draw: with real == fake every interpolate is that point.
    _, same = loss_fn(real, real, key)
    norms = np.linalg.norm(real @ a + w, axis=1)
    np.testing.assert_allclose(same["gradient_penalty"], np.mean((norms - 1) ** 2), rtol=1e-4)
    np.testing.assert_allclose(same["wasserstein"], 0.0, atol=1e-5)


def test_wgan_gp_interpolates_lie_between_real_and_fake():
    # D(x) = 1/2 ||x||^2 with real = 0: ||grad D(x_hat)|| = (1 - eps) ||fake|| with eps in [0, 1].
    fake = np.full((64, 3), 2.0, np.float32)
    critic = lambda x, c: 0.5 * jnp.sum(x**2, axis=1)
    key = jax.random.key(5)
    loss_fn = jax.jit(functools.partial(losses.wgan_gp_loss, critic, centre_weight=0.0))
    _, metrics = loss_fn(np.zeros_like(fake), fake, key)
    eps = np.asarray(jax.random.uniform(key, (64,)))
    norms = (1 - eps) * np.sqrt(12.0)
    np.testing.assert_allclose(metrics["gradient_norm"], norms.mean(), rtol=1e-5)
    assert 0.0 <= eps.min() and eps.max() <= 1.0 and eps.std() > 0.2


def test_wgan_gp_conditional_passes_the_condition_to_every_term():
    # D(x | c) = -||x - c||^2 (+ unconditional offset): high on x = c, eq. (6.3.6).
    rng = np.random.default_rng(2)
    target, fake = rng.uniform(size=(2, 4, 3, 3, 1)).astype(np.float32)
    critic = lambda x, c: -jnp.sum((x - c) ** 2, axis=(1, 2, 3))
    loss_fn = jax.jit(
        functools.partial(losses.wgan_gp_loss, critic, centre_weight=0.0),
        static_argnames="gp_weight",
    )
    loss, metrics = loss_fn(target, fake, jax.random.key(0), condition=target, gp_weight=0.0)
    distance = np.sum((fake - target) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(metrics["d_real"], 0.0, atol=1e-7)
    np.testing.assert_allclose(metrics["d_fake"], -distance.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, -distance.mean(), rtol=1e-5)  # -W estimate: a good critic

    # The penalty differentiates in the image only: grad_x = -2 (x_hat - c) at the interpolates.
    key = jax.random.key(4)
    _, metrics = loss_fn(target, fake, key, condition=target, gp_weight=1.0)
    eps = np.asarray(jax.random.uniform(key, (4,))).reshape(4, 1, 1, 1)
    gap = (1 - eps) * (fake - target)
    norms = np.linalg.norm(2 * gap.reshape(4, -1), axis=1)
    np.testing.assert_allclose(metrics["gradient_penalty"], np.mean((norms - 1) ** 2), rtol=1e-4)


def test_wgan_gp_gradient_raises_the_critic_on_real_and_lowers_it_on_fake():
    rng = np.random.default_rng(3)
    real = rng.normal(1.0, 0.1, size=(16, 4)).astype(np.float32)
    fake = rng.normal(-1.0, 0.1, size=(16, 4)).astype(np.float32)
    params = {"w": np.zeros((4,), np.float32), "b": np.float32(0.5)}

    def loss_fn(params, gp_weight, centre_weight):
        critic = _linear_critic(params["w"], params["b"])
        return losses.wgan_gp_loss(
            critic,
            real,
            fake,
            jax.random.key(0),
            gp_weight=gp_weight,
            centre_weight=centre_weight,
        )

    # Without regularisers, dL/dw = mean(fake) - mean(real) and dL/db = 0 (eq. 6.3.1).
    grad_fn = jax.jit(jax.grad(loss_fn, has_aux=True))
    grads, _ = grad_fn(params, 0.0, 0.0)
    np.testing.assert_allclose(grads["w"], fake.mean(0) - real.mean(0), rtol=1e-5)
    np.testing.assert_allclose(grads["b"], 0.0, atol=1e-7)

    # One descent step on the full loss widens the gap D(real) - D(fake) and centres D.
    grads, before = grad_fn(params, 10.0, 1.0)
    stepped = jax.tree.map(lambda p, g: p - 0.05 * np.asarray(g), params, grads)
    _, after = jax.jit(loss_fn)(stepped, 10.0, 1.0)
    assert after["wasserstein"] > before["wasserstein"]
    assert after["centre"] < before["centre"]
    # The centring term's gradient in the offset: 2 * centre_weight * mixture mean.
    np.testing.assert_allclose(grads["b"], 2 * 0.5, rtol=1e-5)


def _bandit_batch(logits, value, actions, arm_rewards):
    log_pi = jax.nn.log_softmax(logits)
    log_probs = log_pi[actions][None, :]  # [T=1, B]
    entropy = -jnp.sum(jnp.exp(log_pi) * log_pi)
    returns = losses.returns_from_rewards(arm_rewards[actions][None, :])
    values = jnp.full_like(log_probs, value)
    return log_probs, values, returns, jnp.full_like(log_probs, entropy)


def test_a2c_step_on_a_bandit_favours_the_best_arm_and_fits_the_baseline():
    arm_rewards = np.array([0.1, 1.0, 0.3], np.float32)
    actions = np.random.default_rng(0).integers(0, 3, size=512)  # from the uniform policy
    params = {"logits": np.zeros(3, np.float32), "value": np.float32(0.0)}

    def loss_fn(params):
        batch = _bandit_batch(params["logits"], params["value"], actions, arm_rewards)
        return losses.a2c_loss(*batch, entropy_cost=0.0)

    (_, metrics), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    stepped = jax.tree.map(lambda p, g: p - 0.5 * np.asarray(g), params, grads)
    probs = np.exp(stepped["logits"]) / np.exp(stepped["logits"]).sum()
    assert probs[1] > 1 / 3 and probs[1] == probs.max()
    mean_return = np.mean(arm_rewards[actions])
    np.testing.assert_allclose(metrics["return"], mean_return, rtol=1e-6)
    # d/dV of 0.5 * 1/2 (R - V)^2 averaged over the batch: -0.5 (mean R - V).
    np.testing.assert_allclose(grads["value"], -0.5 * mean_return, rtol=1e-5)
    assert abs(stepped["value"] - mean_return) < abs(params["value"] - mean_return)


def test_a2c_loss_value_and_stop_gradients():
    rng = np.random.default_rng(4)
    log_probs, values, returns, entropy = rng.normal(size=(4, 3, 5)).astype(np.float32)
    loss_fn = jax.jit(losses.a2c_loss, static_argnames=("entropy_cost", "baseline_cost"))
    loss, metrics = loss_fn(
        log_probs, values, returns, entropy, entropy_cost=0.01, baseline_cost=0.25
    )
    adv = returns - values
    policy = -np.sum(log_probs * adv, axis=0)
    baseline = 0.25 * 0.5 * np.sum(adv**2, axis=0)
    bonus = -0.01 * np.sum(entropy, axis=0)
    np.testing.assert_allclose(loss, np.mean(policy + baseline + bonus), rtol=1e-5)
    np.testing.assert_allclose(metrics["policy_loss"], policy.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["advantage"], adv.mean(), rtol=1e-5, atol=1e-7)

    # Without the regression term the value head gets no gradient, and returns never do.
    def policy_and_entropy_loss(values, returns):
        return loss_fn(log_probs, values, returns, entropy, entropy_cost=0.0, baseline_cost=0.0)[0]

    grad_values, grad_returns = jax.jit(jax.grad(policy_and_entropy_loss, argnums=(0, 1)))(
        values, returns
    )
    np.testing.assert_array_equal(grad_values, 0.0)
    np.testing.assert_array_equal(grad_returns, 0.0)


def test_a2c_entropy_bonus_increases_entropy_without_rewards():
    actions = np.random.default_rng(1).integers(0, 3, size=64)
    logits = np.array([2.0, -1.0, 0.0], np.float32)

    def loss_fn(logits):
        batch = _bandit_batch(logits, 0.0, actions, np.zeros(3, np.float32))
        return losses.a2c_loss(*batch, entropy_cost=0.1)

    grads, before = jax.jit(jax.grad(loss_fn, has_aux=True))(logits)
    _, after = jax.jit(loss_fn)(logits - np.asarray(grads))
    assert after["entropy"] > before["entropy"]
    np.testing.assert_allclose(before["policy_loss"], 0.0, atol=1e-7)


@TRANSFORMS
def test_returns_from_rewards(transform):
    rewards = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 4.0]], np.float32)
    np.testing.assert_allclose(
        transform(losses.returns_from_rewards)(rewards), [[6, 4], [5, 4], [3, 4]]
    )
    discounted = transform(losses.returns_from_rewards)(rewards, discount=0.5)
    np.testing.assert_allclose(discounted, [[2.75, 1.0], [3.5, 2.0], [3.0, 4.0]])


def test_final_step_rewards_only_at_the_last_step():
    final = np.array([0.5, -2.0], np.float32)
    rewards = jax.jit(losses.final_step_rewards, static_argnums=1)
    np.testing.assert_array_equal(rewards(final, 4), [[0, 0], [0, 0], [0, 0], [0.5, -2.0]])
    aux = np.full((4, 2), -0.1, np.float32)
    np.testing.assert_allclose(
        rewards(final, 4, aux), [[-0.1, -0.1], [-0.1, -0.1], [-0.1, -0.1], [0.4, -2.1]], rtol=1e-6
    )
    # With no auxiliary rewards every step's return is the critic's reward (eq. 6.3.4).
    returns = jax.jit(losses.returns_from_rewards)(rewards(final, 4))
    np.testing.assert_allclose(returns, np.tile(final, (4, 1)))


@TRANSFORMS
def test_stroke_start_penalty(transform):
    flags = np.array([[1, 1, 0, 1, 0, 0, 1], [0, 0, 1, 1, 1, 0, 0]]).T  # [T=7, B=2]
    rewards = transform(losses.stroke_start_penalty)(flags, 0.2)
    expected = np.zeros((7, 2))
    expected[[0, 3, 6], 0] = -0.2
    expected[2, 1] = -0.2
    np.testing.assert_allclose(rewards, expected, rtol=1e-6)


def test_empty_canvas_penalty():
    penalty = jax.jit(losses.empty_canvas_penalty)
    canvases = np.ones((3, 8, 8, 1), np.float32)
    canvases[1, 2, 3] = 0.2  # a visible dab
    canvases[2] -= 0.5 / 255  # float noise under one 8-bit level
    np.testing.assert_allclose(penalty(canvases, 0.3), [-0.3, 0.0, -0.3])
    black = penalty(np.zeros((1, 4, 4, 3), np.float32), 1.0, background=0.0)
    np.testing.assert_allclose(black, [-1.0])


def test_color_histogram_emd_known_values():
    emd = jax.jit(functools.partial(losses.color_histogram_emd, bins=10))
    rng = np.random.default_rng(5)
    x, y = rng.uniform(size=(2, 2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(emd(x, x), 0.0, atol=1e-7)
    np.testing.assert_allclose(emd(x, y), emd(y, x), rtol=1e-6)
    assert np.all(np.asarray(emd(x, y)) > 0)
    black, white = np.zeros_like(x), np.ones_like(x)
    np.testing.assert_allclose(emd(black, white), 0.9, rtol=1e-6)  # bin centres 0.05 -> 0.95
    # Every pixel moves one bin up (0.15 -> 0.25): one bin width, 0.1.
    np.testing.assert_allclose(emd(np.full_like(x, 0.15), np.full_like(x, 0.25)), 0.1, rtol=1e-5)
    # Half the pixels of one channel of three move 4 bins: 0.5 * 4 * 0.1 / 3.
    base, moved = x.copy(), x.copy()
    base[:, :4, :, 1], moved[:, :4, :, 1] = 0.55, 0.95
    np.testing.assert_allclose(emd(base, moved), 0.5 * 0.4 / 3, rtol=1e-5)
    # Pixel positions do not matter, only the colour distribution.
    np.testing.assert_allclose(emd(x, x[:, ::-1, ::-1]), 0.0, atol=1e-7)


def test_l2_reward_and_critic_reward_signs():
    canvas = np.zeros((2, 2, 2, 1), np.float32)
    canvas[0, 0, 0, 0], canvas[0, 1, 1, 0] = 3.0, 4.0
    np.testing.assert_allclose(jax.jit(losses.l2_reward)(canvas, np.zeros_like(canvas)), [-5, 0])
    scores = np.array([1.5, -0.5], np.float32)
    reward_sum = lambda s: losses.critic_reward(s).sum()
    value, grad = jax.jit(jax.value_and_grad(reward_sum))(scores)
    np.testing.assert_allclose(value, 1.0)
    np.testing.assert_array_equal(grad, 0.0)


@TRANSFORMS
def test_vtrace_on_policy_is_the_monte_carlo_return(transform):
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=(5, 4)).astype(np.float32)
    values = rng.normal(size=(5, 4)).astype(np.float32)
    log_probs = rng.normal(size=(5, 4)).astype(np.float32)
    out = transform(losses.vtrace)(log_probs, log_probs, rewards, values)
    returns = np.cumsum(rewards[::-1], axis=0)[::-1]
    np.testing.assert_allclose(out.targets, returns, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.pg_advantages, returns - values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.rhos, 1.0, rtol=1e-6)


def test_vtrace_matches_a_hand_computed_two_step_case():
    # T = 2, one episode: r = (0, 1), V = (0.5, 0.2), ratios pi/mu = (2, 0.5), clipping at 1.
    mu = np.log(np.array([[0.2], [0.4]], np.float32))
    pi = np.log(np.array([[0.4], [0.2]], np.float32))
    rewards = np.array([[0.0], [1.0]], np.float32)
    values = np.array([[0.5], [0.2]], np.float32)
    out = losses.vtrace(mu, pi, rewards, values, discount=0.9)
    # t = 1: rho = c = 0.5; delta = 0.5 (1 + 0 - 0.2) = 0.4; v_1 = 0.2 + 0.4 = 0.6
    # t = 0: rho = c = 1 (clipped); delta = 0 + 0.9 * 0.2 - 0.5 = -0.32;
    #        v_0 = 0.5 - 0.32 + 0.9 * 1 * (0.6 - 0.2) = 0.54
    np.testing.assert_allclose(out.targets[:, 0], [0.54, 0.6], rtol=1e-5)
    # A_0 = 1 * (0 + 0.9 * 0.6 - 0.5) = 0.04; A_1 = 0.5 * (1 + 0 - 0.2) = 0.4
    np.testing.assert_allclose(out.pg_advantages[:, 0], [0.04, 0.4], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.rhos[:, 0], [2.0, 0.5], rtol=1e-5)


def test_a2c_loss_uses_the_given_policy_gradient_advantages():
    log_probs = jnp.array([[0.1, -0.2]])
    values = jnp.zeros((1, 2))
    returns = jnp.ones((1, 2))
    entropy = jnp.zeros((1, 2))
    advantages = jnp.array([[2.0, -3.0]])

    def policy_term(lp):
        loss, _ = losses.a2c_loss(
            lp, values, returns, entropy, entropy_cost=0.0, pg_advantages=advantages
        )
        return loss

    # d/d log_prob of -mean_b sum_t lp * A = -A / B
    np.testing.assert_allclose(jax.grad(policy_term)(log_probs), -advantages / 2, rtol=1e-6)
