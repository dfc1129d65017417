"""SPIRAL objectives and rewards: the WGAN-GP critic, A2C for the policy, auxiliary rewards.

Thesis sec. 6.3 (eqs. 6.3.1-6.3.6), sec. 6.4.3 and 6.4.5 (auxiliary rewards), appendix A.1
(the l2 reward) and A.3 (training details). Every function is pure, batched and `jax.jit`-able.

Sign conventions (one throughout):

* The critic D scores *real* data HIGH. `wgan_gp_loss` minimises eq. (6.3.1),
  L_D = -E_{x~p_d} D(x) + E_{x~p_g} D(x) + R, so `d_real - d_fake` is the critic's estimate of
  the Wasserstein-1 distance and grows as the critic gets better.
* The generator minimises eq. (6.3.2), L_G = -E_{x~p_g} D(x), i.e. it *maximises* D on its
  renders: the reward at t = N is r_N = +D(R(a_1..a_N)) (eq. 6.3.4; `critic_reward`), or
  +D(x | x_target) in the conditional case (eq. 6.3.6).
* The fixed reward of sec. 6.3.3 / A.1 uses the same convention: under (6.3.1) with p_d a Dirac
  at x_target, the optimal critic is D(x) = -||x - x_target||_2 + const (A.1 writes the distance
  without the minus sign; it is the minimiser of (6.3.1) only with the sign, since
  L_D(-||x - x_target||_2) = -E_{x~p_g} ||x - x_target||_2 = -W_1). So `l2_reward` is
  -||x - x_target||_2: higher is better, as for the critic.
* Auxiliary rewards (`stroke_start_penalty`, `empty_canvas_penalty`, the colour-histogram EMD)
  take a non-negative penalty magnitude and return non-positive rewards that are *added* to the
  critic's reward.
* `a2c_loss` maximises the return R_t = sum_{t' >= t} r_t' (eq. 6.3.3), so every reward above is
  "more is better" for the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

CriticFn = Callable[[jax.Array, jax.Array | None], jax.Array]
"""`critic_fn(images [B, ...], condition [B, ...] | None) -> scores [B]`."""

GRADIENT_PENALTY_WEIGHT = 10.0
"""lambda of Gulrajani et al. (2017), used unchanged in all their experiments."""
CENTRE_WEIGHT = 1.0
"""Weight of the (mean D over 1/2 p_g + 1/2 p_d)^2 term; see `wgan_gp_loss`."""
BASELINE_COST = 0.5
"""IMPALA's default weight of the baseline regression 1/2 (R_t - V(s_t))^2."""
HISTOGRAM_BINS = 20
"""Bins per colour channel for `color_histogram_emd`: the colour resolution of the action space
(20 bins per RGB component, sec. 6.4.2)."""
BLANK_CANVAS_TOLERANCE = 1.0 / 255.0
"""A canvas is blank when no pixel differs from the background by more than one 8-bit level."""


def wgan_gp_loss(
    critic_fn: CriticFn,
    real: jax.Array,
    fake: jax.Array,
    rng: jax.Array,
    *,
    gp_weight: float = GRADIENT_PENALTY_WEIGHT,
    centre_weight: float = CENTRE_WEIGHT,
    condition: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The critic objective of eq. (6.3.1) with the WGAN-GP regulariser and a centring term.

        L_D = -mean_i D(real_i) + mean_i D(fake_i)                                  # eq. (6.3.1)
              + gp_weight * mean_i (||grad_x D(x_hat_i)||_2 - 1)^2                  # R, WGAN-GP
              + centre_weight * (1/2 mean_i D(real_i) + 1/2 mean_i D(fake_i))^2     # sec. 6.3.2

    with x_hat_i = eps_i real_i + (1 - eps_i) fake_i, eps = `jax.random.uniform(rng, (B,))`
    (one eps per example, Gulrajani et al. 2017, alg. 1).

    The first two terms and R are unchanged when a constant is added to D, so (6.3.1) defines D
    only up to that constant. Sec. 6.3.2 resolves it by "encouraging D(x) to be close to 0 on
    average for x ~ 1/2 p_g + 1/2 p_d": the last term is the square of the batch estimate of that
    mixture mean (real and fake batches weighted 1/2 each whatever their sizes). The thesis gives
    no weight. The term is zero at every centred critic, and the other terms have zero gradient
    with respect to an additive offset b of D, so it fixes the constant without trading off
    against the Wasserstein estimate: its weight only sets how fast b is pulled to 0 (dL/db =
    2 * centre_weight * mixture mean). The default 1.0 makes that pull comparable in size to the
    Wasserstein terms (|dL/db| = 2 |mean| for a critic off by `mean`). A centred critic keeps
    the policy's rewards (eq. 6.3.4), returns and value baseline near zero.

    Conditional generation (eq. 6.3.6): pass `real = x_target`, `condition = x_target`; the
    condition goes to every critic call (real, fake and interpolates), so the first two terms are
    -D(x_target | x_target) + E D(x | x_target). Gradients for the penalty are taken with respect
    to the image only.

    Args:
      critic_fn: `critic_fn(images, condition) -> [B]` (a closure over the critic's parameters,
        so `jax.grad` of a wrapper taking the parameters works). Called with `condition=None`
        when unconditional. Examples must be scored independently (no batch norm, as in
        Gulrajani et al.): the per-example input gradients are taken as the gradient of the
        summed scores.
      real: [B, ...] data samples (the targets in the conditional case).
      fake: [B, ...] generated samples (final renders from the replay), same shape as `real`.
      rng: key for the interpolation coefficients.
      gp_weight: lambda of the gradient penalty (10, Gulrajani et al.).
      centre_weight: weight of the centring term.
      condition: [B, ...] conditioning input (the targets) or None.

    Returns:
      (loss, metrics): `loss` the scalar L_D; metrics `d_real`, `d_fake` (batch means),
      `wasserstein` = d_real - d_fake, `gradient_penalty` (mean (||g|| - 1)^2, unweighted),
      `gradient_norm` (mean ||g||), `centre` (the unweighted squared mixture mean), `loss`.
    """
    chex.assert_equal_shape([real, fake])
    chex.assert_rank(rng, {0, 1})
    batch = real.shape[0]
    if condition is not None:
        chex.assert_axis_dimension(condition, 0, batch)

    d_real = critic_fn(real, condition)
    d_fake = critic_fn(fake, condition)
    chex.assert_shape([d_real, d_fake], (batch,))

    eps = jax.random.uniform(rng, (batch,), dtype=real.dtype)
    eps = eps.reshape((batch,) + (1,) * (real.ndim - 1))
    interpolates = eps * real + (1.0 - eps) * fake
    grads = jax.grad(lambda x: jnp.sum(critic_fn(x, condition)))(interpolates)
    squared_norms = jnp.sum(jnp.square(grads).reshape(batch, -1), axis=1)
    # The epsilon keeps the derivative of the norm finite where the gradient vanishes.
    gradient_norm = jnp.sqrt(squared_norms + 1e-12)
    gradient_penalty = jnp.mean(jnp.square(gradient_norm - 1.0))

    mean_real, mean_fake = jnp.mean(d_real), jnp.mean(d_fake)
    centre = jnp.square(0.5 * mean_real + 0.5 * mean_fake)
    loss = -mean_real + mean_fake + gp_weight * gradient_penalty + centre_weight * centre
    metrics = {
        "d_real": mean_real,
        "d_fake": mean_fake,
        "wasserstein": mean_real - mean_fake,
        "gradient_penalty": gradient_penalty,
        "gradient_norm": jnp.mean(gradient_norm),
        "centre": centre,
        "loss": loss,
    }
    return loss, metrics


def a2c_loss(
    log_probs: jax.Array,
    values: jax.Array,
    returns: jax.Array,
    entropy: jax.Array,
    *,
    entropy_cost: float,
    baseline_cost: float = BASELINE_COST,
    pg_advantages: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Advantage actor-critic loss for the policy, eq. (6.3.3), with baseline and entropy terms.

        policy   = -sum_t log pi(a_t | s_t; theta) * sg(R_t - V(s_t))                # eq. (6.3.3)
        baseline = baseline_cost * sum_t 1/2 (sg(R_t) - V(s_t))^2
        bonus    = -entropy_cost * sum_t H[pi(. | s_t)]                               # sec. 6.3.4
        loss     = mean over the batch of (policy + baseline + bonus)

    sg is `jax.lax.stop_gradient`. The advantage R_t - V(s_t) is a constant in the policy term:
    this is what (6.3.3) means by V being "independent of theta", and it keeps the policy-gradient
    term from training the value head; V is trained only by the regression term. Terms are
    summed over time (as in (6.3.3) and IMPALA) and averaged over the batch, so the loss scale
    does not depend on the batch size. The entropy bonus is the exploration term of
    Mnih et al. (2016) that sec. 6.3.4 adds to L_G; its weight is tuned by PBT (A.3).

    Args:
      log_probs: [T, B] log pi(a_t | s_t) of the actions taken (for a tuple action, the sum of
        the components' log-probabilities under the autoregressive decoder).
      values: [T, B] V(s_t) from the value head.
      returns: [T, B] R_t (`returns_from_rewards`).
      entropy: [T, B] entropy of pi(. | s_t) (for a tuple action, e.g. the sum of the
        components' conditional entropies).
      entropy_cost: weight of the entropy bonus.
      baseline_cost: weight of the baseline regression (0.5, IMPALA's default).
      pg_advantages: optional [T, B] advantages for the policy term in place of R_t - V(s_t)
        (V-trace's importance-weighted ones, `vtrace`, with `returns` its targets v_t).

    Returns:
      (loss, metrics): metrics `policy_loss`, `baseline_loss`, `entropy_loss` (the weighted
      terms, batch means), `entropy` (mean per step), `advantage` and `return` (means), `loss`.
    """
    chex.assert_rank(log_probs, 2)
    chex.assert_equal_shape([log_probs, values, returns, entropy])
    returns = jax.lax.stop_gradient(returns)
    advantages = returns - values
    if pg_advantages is None:
        pg_advantages = advantages
    chex.assert_equal_shape([pg_advantages, log_probs])
    pg_advantages = jax.lax.stop_gradient(pg_advantages)
    policy_loss = -jnp.sum(log_probs * pg_advantages, axis=0)  # eq. (6.3.3)
    baseline_loss = baseline_cost * 0.5 * jnp.sum(jnp.square(advantages), axis=0)
    entropy_loss = -entropy_cost * jnp.sum(entropy, axis=0)
    loss = jnp.mean(policy_loss + baseline_loss + entropy_loss)
    metrics = {
        "policy_loss": jnp.mean(policy_loss),
        "baseline_loss": jnp.mean(baseline_loss),
        "entropy_loss": jnp.mean(entropy_loss),
        "entropy": jnp.mean(entropy),
        "advantage": jnp.mean(advantages),
        "return": jnp.mean(returns),
        "loss": loss,
    }
    return loss, metrics


def returns_from_rewards(rewards: jax.Array, discount: float = 1.0) -> jax.Array:
    """Monte-Carlo returns R_t = sum_{t' >= t} discount^(t' - t) r_t' of complete episodes.

    With `discount = 1` (the thesis) this is R_t = sum_{t'=t}^N r_t', the 1-sample estimate that
    follows eq. (6.3.3). Episodes have a fixed length N, so there is no bootstrapping.

    Args:
      rewards: [T, B] rewards, time first.
      discount: per-step discount.

    Returns:
      [T, B] returns.
    """
    chex.assert_rank(rewards, 2)

    def step(carry: jax.Array, reward: jax.Array) -> tuple[jax.Array, jax.Array]:
        carry = reward + discount * carry
        return carry, carry

    _, returns = jax.lax.scan(step, jnp.zeros_like(rewards[0]), rewards, reverse=True)
    return returns


class VTrace(NamedTuple):
    targets: jax.Array  # [T, B] v_t, the value targets
    pg_advantages: jax.Array  # [T, B] rho_t (r_t + discount v_{t+1} - V(s_t))
    rhos: jax.Array  # [T, B] the unclipped importance ratios pi / mu


def vtrace(
    behaviour_log_probs: jax.Array,
    target_log_probs: jax.Array,
    rewards: jax.Array,
    values: jax.Array,
    *,
    bootstrap_value: jax.Array | None = None,
    discount: float = 1.0,
    clip_rho: float = 1.0,
    clip_c: float = 1.0,
    clip_pg_rho: float = 1.0,
) -> VTrace:
    """V-trace targets and policy-gradient advantages (Espeholt et al., 2018, eq. 1 and sec. 4.2).

    The correction for episodes painted by actors with an older policy mu than the learner's pi
    (the off-policy lag of the distributed system, sec. 6.3.4):

        rho_t = min(clip_rho, pi/mu),  c_t = min(clip_c, pi/mu)
        v_t   = V(s_t) + rho_t (r_t + discount V(s_{t+1}) - V(s_t))
                       + discount c_t (v_{t+1} - V(s_{t+1}))
        A_t   = min(clip_pg_rho, pi/mu) (r_t + discount v_{t+1} - V(s_t))

    with V(s_T) = v_T = `bootstrap_value` (0: SPIRAL's episodes end). On-policy (pi = mu) and
    with discount 1, v_t is the Monte-Carlo return R_t and A_t = R_t - V(s_t): plain A2C.
    Everything is a constant for the gradient.

    Args:
      behaviour_log_probs, target_log_probs: [T, B] log mu(a_t | s_t), log pi(a_t | s_t).
      rewards, values: [T, B] r_t and V(s_t).
      bootstrap_value: [B] V(s_T) after the last step (default 0).

    Returns:
      `VTrace(targets, pg_advantages, rhos)`.
    """
    chex.assert_rank(rewards, 2)
    chex.assert_equal_shape([behaviour_log_probs, target_log_probs, rewards, values])
    sg = jax.lax.stop_gradient
    values = sg(values)
    if bootstrap_value is None:
        bootstrap_value = jnp.zeros_like(values[0])
    rhos = jnp.exp(sg(target_log_probs) - sg(behaviour_log_probs))
    clipped_rhos = jnp.minimum(clip_rho, rhos)
    cs = jnp.minimum(clip_c, rhos)
    next_values = jnp.concatenate([values[1:], bootstrap_value[None]], axis=0)
    deltas = clipped_rhos * (rewards + discount * next_values - values)

    def step(acc: jax.Array, x: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, c = x
        acc = delta + discount * c * acc
        return acc, acc

    _, corrections = jax.lax.scan(step, jnp.zeros_like(bootstrap_value), (deltas, cs), reverse=True)
    targets = values + corrections
    next_targets = jnp.concatenate([targets[1:], bootstrap_value[None]], axis=0)
    pg_advantages = jnp.minimum(clip_pg_rho, rhos) * (rewards + discount * next_targets - values)
    return VTrace(sg(targets), sg(pg_advantages), rhos)


def final_step_rewards(
    final_reward: jax.Array, num_steps: int, aux_rewards: jax.Array | None = None
) -> jax.Array:
    """Per-step rewards of eq. (6.3.4): 0 for t < N and `final_reward` at t = N, plus `aux_rewards`.

    Auxiliary rewards that depend only on the final canvas (`empty_canvas_penalty`,
    `color_histogram_emd`) are added to `final_reward`; per-step ones (`stroke_start_penalty`)
    are passed as `aux_rewards`.

    Args:
      final_reward: [B] reward of the final render (`critic_reward` or `l2_reward`).
      num_steps: N, the episode length T.
      aux_rewards: optional [T, B] intermediate rewards (sec. 6.3.2, last paragraph).

    Returns:
      [T, B] rewards.
    """
    chex.assert_rank(final_reward, 1)
    rewards = jnp.zeros((num_steps, *final_reward.shape), final_reward.dtype)
    rewards = rewards.at[-1].set(final_reward)  # eq. (6.3.4)
    if aux_rewards is not None:
        chex.assert_shape(aux_rewards, rewards.shape)
        rewards = rewards + aux_rewards
    return rewards


def critic_reward(d_values: jax.Array) -> jax.Array:
    """The reward at t = N from the critic, eq. (6.3.4): r_N = +D(R(a)) or +D(x | x_target).

    The critic scores real data high (eq. 6.3.1), so the generator's reward is the critic's score
    itself. The gradient is stopped: the reward is a constant for the policy learner.

    Args:
      d_values: [B] critic scores of the final renders.

    Returns:
      [B] rewards.
    """
    chex.assert_rank(d_values, 1)
    return jax.lax.stop_gradient(d_values)


def l2_reward(canvas: jax.Array, target: jax.Array) -> jax.Array:
    """The fixed conditional reward of sec. 6.3.3 / A.1: r_N = -||x - x_target||_2 per example.

    The l2 norm is taken over all pixels and channels (not the mean squared difference that
    figs. 6.9 / 6.10 plot). -||x - x_target||_2 is, up to a constant, the critic that minimises
    (6.3.1) when p_d is a Dirac at x_target (A.1), so this reward has the critic's sign.

    Args:
      canvas: [B, H, W, C] final renders.
      target: [B, H, W, C] targets.

    Returns:
      [B] rewards (<= 0).
    """
    chex.assert_rank(canvas, 4)
    chex.assert_equal_shape([canvas, target])
    difference = (canvas - target).reshape(canvas.shape[0], -1)
    return -jnp.sqrt(jnp.sum(jnp.square(difference), axis=1))


def stroke_start_penalty(flags: jax.Array, penalty: float) -> jax.Array:
    """MNIST's auxiliary reward (sec. 6.4.3): -penalty each time a continuous run of strokes starts.

    A run starts at step t when the action paints (flag 1) and either t = 0 or the previous
    action jumped (flag 0): a stroke continues from where the previous stroke ended only if that
    one painted. E.g. flags [1, 1, 0, 1, 0, 0, 1] start runs at t = 0, 3, 6.

    Args:
      flags: [T, B] the action's flag component, 1 paints a stroke, 0 jumps.
      penalty: magnitude (>= 0) of the penalty per run.

    Returns:
      [T, B] rewards: -penalty where a run starts, 0 elsewhere.
    """
    chex.assert_rank(flags, 2)
    paints = flags == 1
    previous_paints = jnp.concatenate([jnp.zeros_like(paints[:1]), paints[:-1]], axis=0)
    starts = paints & ~previous_paints
    return -penalty * starts.astype(jnp.float32)


def empty_canvas_penalty(
    final_canvas: jax.Array,
    penalty: float,
    background: float = 1.0,
    threshold: float = BLANK_CANVAS_TOLERANCE,
) -> jax.Array:
    """MNIST's auxiliary reward (sec. 6.4.3): -penalty when the episode drew no visible stroke.

    A canvas is blank when max |canvas - background| <= threshold over all pixels and channels.
    The paint environments start from a white canvas (background 1.0).

    Args:
      final_canvas: [B, H, W, C] final renders, values in [0, 1].
      penalty: magnitude (>= 0) of the penalty.
      background: value of the blank canvas.
      threshold: largest per-pixel difference that still counts as blank (one 8-bit level).

    Returns:
      [B] rewards: -penalty for blank canvases, 0 otherwise (add to the final reward).
    """
    chex.assert_rank(final_canvas, 4)
    difference = jnp.abs(final_canvas - background).reshape(final_canvas.shape[0], -1)
    blank = jnp.max(difference, axis=1) <= threshold
    return -penalty * blank.astype(jnp.float32)


def color_histogram_emd(x: jax.Array, y: jax.Array, bins: int = HISTOGRAM_BINS) -> jax.Array:
    """Earth mover's distance between the colour histograms of two images (sec. 6.4.5).

    Per channel c, values in [0, 1] are hard-binned into `bins` equal bins of width w = 1 / bins
    (bin k holds [k w, (k + 1) w); 1.0 falls in the last bin), giving normalised histograms h_x,
    h_y. Between two distributions on the same evenly spaced bin centres the 1D EMD (W_1 with
    ground distance |u - v|) is

        EMD_c = w * sum_{k=0}^{bins-1} |CDF_x(k) - CDF_y(k)|,   CDF(k) = sum_{j <= k} h(j),

    and the result is the mean of EMD_c over channels. It lies in [0, 1 - w]: 0 for identical
    histograms, w for a shift by one bin, 1 - w from all-black to all-white. Hard binning is not
    differentiable, which is fine for a reward: CelebA uses -weight * EMD(canvas, target) as a
    penalty added to the final reward.

    Args:
      x: [B, H, W, C] images, values in [0, 1].
      y: [B, H', W', C] images, values in [0, 1] (sizes may differ; histograms are normalised).
      bins: histogram bins per channel.

    Returns:
      [B] distances.
    """
    chex.assert_rank([x, y], 4)
    chex.assert_equal_shape_prefix([x, y], 1)
    chex.assert_equal_shape_suffix([x, y], 1)
    cdf_x = _channel_cdfs(x, bins)
    cdf_y = _channel_cdfs(y, bins)
    per_channel = jnp.sum(jnp.abs(cdf_x - cdf_y), axis=-1) / bins
    return jnp.mean(per_channel, axis=-1)


def _channel_cdfs(images: jax.Array, bins: int) -> jax.Array:
    """[B, H, W, C] -> [B, C, bins] cumulative histograms: fraction of pixels in bins <= k."""
    index = jnp.clip(jnp.floor(images.astype(jnp.float32) * bins), 0, bins - 1).astype(jnp.int32)
    index = index.reshape(images.shape[0], -1, images.shape[-1])
    at_or_below = index[..., None] <= jnp.arange(bins, dtype=jnp.int32)
    return jnp.mean(at_or_below.astype(jnp.float32), axis=1)
