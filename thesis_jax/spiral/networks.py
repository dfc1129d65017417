"""SPIRAL networks: the policy pi(a_t | s_t) and the WGAN-GP critic D (thesis sec. 6.3, app. A.2).

Policy, one step (fig. A.2). The canvas C_t, concatenated along channels with x_target for a
conditional agent (sec. 6.3.3, eq. 6.3.5) and replaced by zeros for a "blind" one (sec. 6.4.3; the
two variants share one parameter layout), goes through a 5x5 convolution together with two
coordinate planes. The last action a_t is embedded
(16 dims per component), passed through an MLP and added to every position of that feature map.
Strided 4x4 convolutions downsample it (64 -> 32 -> 16 -> 8), a stack of ResNet blocks and a fully
connected layer give an embedding, and an LSTM turns it into z_0, the seed of the action decoder
and the input of a linear value head V(s_t) (the baseline of eq. 6.3.3).

Action decoder (fig. A.3). The components of a_{t+1} are sampled one after another, in the order
of the environment's action spec, from categoricals pi(a^i | z_i). A spatial component (a cell of
a grid x grid grid: the paint env's control and end points, MuJoCo's location) gets its logits from
z_i by a linear map to a small 4x4 map, ResNet blocks, 2x transposed convolutions up to
grid x grid and a final 1-channel convolution, flattened row-major so that logit k belongs to cell
k = row * grid + col, the environments' numbering. A scalar component gets its logits from a fully
connected layer. Once a^i is chosen it is embedded into 16 dims and folded into z:
z_{i+1} = relu(z_i + MLP([z_i, embed(a^i)])). The same pass either samples a^i (actors) or takes
it from given actions (teacher forcing: the learner recomputes log pi(a_t | s_t) of stored
trajectories), and returns log pi(a_t | s_t) = sum_i log pi(a^i | z_i) and the entropy
sum_i H(pi(. | z_i)) under that conditioning, the two terms of the A2C loss (eq. 6.3.3, sec. 6.3.4).

The last layer of every action head starts at zero, so an untrained policy is uniform over every
component (log-prob -sum_i log n_i, entropy sum_i log n_i).

Default sizes (`PolicyConfig()`, 64 x 64 canvas): 32 channels everywhere, 8 ResNet blocks in the
encoder at 8 x 8 and 8 in each spatial head at 4 x 4, a 256-d embedding and a 256-unit LSTM.

Critic (app. A.2, "a conventional architecture similar to DCGAN"): four 4x4 stride-2
convolutions (64, 128, 256, 512 channels; 64 -> 4 spatially) with leaky ReLU (0.2) and a linear
output. There is no batch normalisation, which would break the per-sample gradient penalty of
WGAN-GP (Gulrajani et al. 2017); layer normalisation, their recommended replacement, follows every
convolution but the first. The conditional critic D(x | x_target) of eq. (6.3.6) sees x and
x_target concatenated along channels. Its convolutions are `core.layers.Conv` (Flax's parameters),
whose gradients XLA:CPU runs fast also when WGAN-GP's penalty differentiates them a second time.

Users need not touch Flax: `make_policy(spec)` builds the module, `init_policy` its parameters,
`policy_step` samples a step, `policy_evaluate` scores given actions, `unroll` scores whole stored
trajectories (the encoder and the decoder run batched over time; only the LSTM is scanned), and
`init_critic` initialises a `Critic`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from thesis_jax.core import layers

SPATIAL_COMPONENTS = ("control", "end", "location")
"""Action components decoded as grid cells when their number of choices is a square."""

LSTMCarry = tuple[jax.Array, jax.Array]
"""(cell, hidden), each float32 [B, lstm_size]."""


class PolicyConfig(NamedTuple):
    """Sizes and variants of the policy network (fig. A.2, A.3)."""

    conditional: bool = False  # the policy also sees x_target (sec. 6.3.3)
    blind: bool = False  # the policy does not see the canvas (sec. 6.4.3)
    channels: int = 32  # width of every convolution
    encoder_size: int = 8  # strided convolutions halve the canvas down to this side
    encoder_blocks: int = 8  # ResNet blocks after downsampling
    embedding_size: int = 256  # fully connected layer before the LSTM
    lstm_size: int = 256  # z has this size
    action_embedding: int = 16  # code of one action component (app. A.2)
    condition_mlp: tuple[int, ...] = (64, 32)  # hidden layers on the last-action codes
    update_mlp: tuple[int, ...] = (16, 32)  # hidden layers of z_{i+1} = relu(z_i + MLP(...))
    decoder_size: int = 4  # spatial heads start from a map of (at most) this side
    decoder_blocks: int = 8  # ResNet blocks in each spatial head
    spatial_components: tuple[str, ...] = SPATIAL_COMPONENTS


DEFAULT_CONFIG = PolicyConfig()


class PolicyInputs(NamedTuple):
    """What the policy sees at one step; build it from an env `Observation` and the target."""

    canvas: jax.Array  # float [B, H, W, C] in [0, 1]
    last_action: jax.Array  # int32 [B, num_components], spec order; zeros after reset
    # float [B, H, W, C'] in [0, 1]; conditional policies only. Or [B', H, W, C'] with B a multiple
    # of B': the canvases are several steps of B' episodes, time-major (row i sees target i % B').
    target: jax.Array | None = None


class PolicyOutput(NamedTuple):
    actions: jax.Array  # int32 [B, num_components], spec order
    log_prob: jax.Array  # float32 [B], log pi(a_t | s_t) = sum over components
    entropy: jax.Array  # float32 [B], sum over components of the conditional entropies
    value: jax.Array  # float32 [B], V(s_t)
    carry: LSTMCarry  # the LSTM state after this step


def spatial_components(
    action_spec: Mapping[str, int] | tuple[tuple[str, int], ...],
    names: tuple[str, ...] = SPATIAL_COMPONENTS,
) -> dict[str, int]:
    """The spatial components of a spec -> their grid side.

    A component is spatial when its name is in `names` and its number of choices is grid^2 for
    some grid >= 2; its choices are then the cells of that grid, row-major.
    """
    grids = {}
    for name, size in dict(action_spec).items():
        side = math.isqrt(size)
        if name in names and side >= 2 and side * side == size:
            grids[name] = side
    return grids


def _halvings(size: int, floor: int) -> int:
    """How many exact halvings take `size` down to `floor` (or to an odd size above it)."""
    count = 0
    while size > floor and size % 2 == 0:
        size //= 2
        count += 1
    return count


class ResidualStack(nn.Module):
    """ResNet v2 blocks x + conv1x1(relu(conv3x3(relu(x)))) (He et al. 2016), then a ReLU."""

    channels: int
    blocks: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(self.blocks):
            h = layers.Conv(self.channels, (3, 3))(nn.relu(x))
            x = x + layers.Conv(self.channels, (1, 1))(nn.relu(h))
        return nn.relu(x)


class ComponentEmbedding(nn.Module):
    """The 16-d code of one action component (app. A.2): a lookup table for a scalar component,
    a linear map of the cell's (row, column), scaled to [-1, 1], for a spatial one."""

    size: int
    grid: int  # 0 for a scalar component
    features: int

    @nn.compact
    def __call__(self, action: jax.Array) -> jax.Array:
        if self.grid:
            row, col = jnp.divmod(action, self.grid)
            position = jnp.stack([row, col], -1).astype(jnp.float32)
            return nn.Dense(self.features)(position * (2.0 / (self.grid - 1)) - 1.0)
        return nn.Embed(self.size, self.features)(action)


class InputConv(nn.Module):
    """The encoder's first 5x5 convolution over [coordinate planes, canvas, target] (fig. A.2),
    one group of input channels at a time (the same parameters as `nn.Conv` over their
    concatenation, and the same outputs up to float rounding).

    A convolution is linear in its input channels, so the coordinate planes, the same for every
    image, are convolved once; a blind policy's canvas, all zeros, not at all; and a target
    shared by several steps of an episode once per episode. `unroll` scores T steps of B episodes
    with B targets: the convolution and its kernel gradient then run over T * B canvases of one
    channel, B targets and one coordinate image, instead of T * B images of four channels.
    """

    features: int
    kernel_size: tuple[int, int] = (5, 5)

    @nn.compact
    def __call__(self, canvas: jax.Array, target: jax.Array | None, blind: bool) -> jax.Array:
        batch, height, width, channels = canvas.shape
        inputs = 2 + channels + (0 if target is None else target.shape[-1])
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (*self.kernel_size, inputs, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))

        conv = functools.partial(layers.conv, padding="SAME")
        rows = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, height)[:, None], (height, width))
        cols = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, width)[None, :], (height, width))
        out = conv(jnp.stack([rows, cols], -1)[None], kernel[:, :, :2]) + bias
        if not blind:  # T * B canvases: the kernel gradient over slices of them, 2.6x faster
            canvas_kernel = kernel[:, :, 2 : 2 + channels]
            out = out + layers.fast_conv(canvas.astype(jnp.float32), canvas_kernel, "SAME", 8)
        if target is not None:
            shared = conv(target.astype(jnp.float32), kernel[:, :, 2 + channels :])
            repeats = batch // target.shape[0]  # time-major steps of the same episodes
            shared = jnp.broadcast_to(shared, (repeats, *shared.shape))
            out = out + shared.reshape(batch, *shared.shape[2:])
        return jnp.broadcast_to(out, (batch, *out.shape[1:]))


class Encoder(nn.Module):
    """Fig. A.2 up to the LSTM: canvas (+ target), last action -> embedding [B, embedding_size]."""

    action_spec: tuple[tuple[str, int], ...]
    config: PolicyConfig

    @nn.compact
    def __call__(self, inputs: PolicyInputs) -> jax.Array:
        cfg = self.config
        batch, height, width = inputs.canvas.shape[:3]
        target = inputs.target if cfg.conditional else None
        x = InputConv(cfg.channels, name="input_conv")(inputs.canvas, target, cfg.blind)

        grids = spatial_components(self.action_spec, cfg.spatial_components)
        codes = [
            ComponentEmbedding(
                size, grids.get(name, 0), cfg.action_embedding, name=f"{name}_embed"
            )(inputs.last_action[:, i])
            for i, (name, size) in enumerate(self.action_spec)
        ]
        condition = jnp.concatenate(codes, -1)
        for i, features in enumerate(cfg.condition_mlp):
            condition = nn.relu(nn.Dense(features, name=f"condition_{i}")(condition))
        condition = nn.Dense(cfg.channels, name="condition_out")(condition)
        x = nn.relu(x + condition[:, None, None, :])

        steps_h, steps_w = _halvings(height, cfg.encoder_size), _halvings(width, cfg.encoder_size)
        for i in range(max(steps_h, steps_w)):
            strides = (2 if i < steps_h else 1, 2 if i < steps_w else 1)
            x = nn.relu(layers.Conv(cfg.channels, (4, 4), strides, name=f"strided_{i}")(x))
        x = layers.Conv(cfg.channels, (3, 3), name="pre_stack")(x)
        x = ResidualStack(cfg.channels, cfg.encoder_blocks)(x)
        return nn.Dense(cfg.embedding_size, name="embedding")(x.reshape(batch, -1))


class SpatialLogits(nn.Module):
    """Fig. A.3, spatial branch: z -> logits [B, grid * grid] over grid cells, row-major."""

    grid: int
    channels: int
    blocks: int
    seed_size: int

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        upsamplings = _halvings(self.grid, self.seed_size)
        side = self.grid >> upsamplings
        x = nn.Dense(side * side * self.channels, name="seed")(z)
        x = ResidualStack(self.channels, self.blocks)(x.reshape(-1, side, side, self.channels))
        for i in range(upsamplings):
            x = layers.ConvTranspose(self.channels, (4, 4), (2, 2), name=f"transpose_{i}")(x)
            x = nn.relu(x)
        x = layers.Conv(1, (3, 3), kernel_init=nn.initializers.zeros, name="final")(x)
        return x.reshape(x.shape[0], self.grid * self.grid)


class ActionDecoder(nn.Module):
    """Fig. A.3: z_0 -> a_{t+1}, one component at a time in spec order.

    Exactly one of `rng` (sample) and `actions` (int [B, num_components], teacher forcing) is
    given. Returns (actions int32 [B, C], log_prob [B], entropy [B], {component: logits [B, n]}).
    """

    action_spec: tuple[tuple[str, int], ...]
    config: PolicyConfig

    @nn.compact
    def __call__(
        self, z: jax.Array, *, rng: jax.Array | None = None, actions: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        if (rng is None) == (actions is None):
            raise ValueError("pass exactly one of `rng` (to sample) or `actions` (to evaluate)")
        cfg = self.config
        num_components = len(self.action_spec)
        if actions is not None:
            chex.assert_shape(actions, (z.shape[0], num_components))
        keys = None if rng is None else jax.random.split(rng, num_components)
        grids = spatial_components(self.action_spec, cfg.spatial_components)
        chosen, log_probs, entropies, all_logits = [], [], [], {}
        for i, (name, size) in enumerate(self.action_spec):
            if name in grids:
                head = SpatialLogits(
                    grids[name],
                    cfg.channels,
                    cfg.decoder_blocks,
                    cfg.decoder_size,
                    name=f"{name}_logits",
                )
            else:
                head = nn.Dense(size, kernel_init=nn.initializers.zeros, name=f"{name}_logits")
            logits = head(z)
            log_p = jax.nn.log_softmax(logits)
            action = (
                jax.random.categorical(keys[i], logits) if actions is None else actions[:, i]
            ).astype(jnp.int32)
            chosen.append(action)
            log_probs.append(jnp.take_along_axis(log_p, action[:, None], -1)[:, 0])
            entropies.append(-jnp.sum(jnp.exp(log_p) * log_p, -1))
            all_logits[name] = logits
            if i + 1 < num_components:
                code = ComponentEmbedding(
                    size, grids.get(name, 0), cfg.action_embedding, name=f"{name}_embed"
                )(action)
                h = jnp.concatenate([z, code], -1)
                for j, features in enumerate(cfg.update_mlp):
                    h = nn.relu(nn.Dense(features, name=f"{name}_update_{j}")(h))
                z = nn.relu(z + nn.Dense(z.shape[-1], name=f"{name}_update_out")(h))
        log_prob = jnp.sum(jnp.stack(log_probs), 0)
        entropy = jnp.sum(jnp.stack(entropies), 0)
        return jnp.stack(chosen, -1), log_prob, entropy, all_logits


class PolicyNet(nn.Module):
    """The SPIRAL policy for one step (fig. A.2 + A.3), built from an environment's action spec.

    `__call__(inputs, carry, rng=...)` samples a_{t+1}; `__call__(inputs, carry, actions=...)`
    scores given actions. `encode`, `recur`, `decode` and `value` are the stages, for `unroll`.
    """

    action_spec: tuple[tuple[str, int], ...]
    config: PolicyConfig = DEFAULT_CONFIG

    def setup(self) -> None:
        self.encoder = Encoder(self.action_spec, self.config)
        self.core = nn.OptimizedLSTMCell(self.config.lstm_size)
        self.decoder = ActionDecoder(self.action_spec, self.config)
        self.value_head = nn.Dense(1)

    def __call__(
        self,
        inputs: PolicyInputs,
        carry: LSTMCarry,
        *,
        rng: jax.Array | None = None,
        actions: jax.Array | None = None,
    ) -> PolicyOutput:
        carry, z = self.recur(carry, self.encode(inputs))
        actions, log_prob, entropy, _ = self.decode(z, rng=rng, actions=actions)
        return PolicyOutput(actions, log_prob, entropy, self.value(z), carry)

    def encode(self, inputs: PolicyInputs) -> jax.Array:
        chex.assert_rank(inputs.canvas, 4)
        chex.assert_shape(inputs.last_action, (inputs.canvas.shape[0], len(self.action_spec)))
        if self.config.conditional:
            if inputs.target is None:
                raise ValueError("a conditional policy needs `target` images")
            chex.assert_rank(inputs.target, 4)
            chex.assert_equal(inputs.target.shape[1:3], inputs.canvas.shape[1:3])
            if inputs.canvas.shape[0] % inputs.target.shape[0]:
                raise ValueError(
                    f"{inputs.canvas.shape[0]} canvases are not whole steps of "
                    f"{inputs.target.shape[0]} targets' episodes"
                )
        elif inputs.target is not None:
            raise ValueError(
                "this policy is unconditional; build it with PolicyConfig(conditional=True) "
                "to give it a target"
            )
        return self.encoder(inputs)

    def recur(self, carry: LSTMCarry, embedding: jax.Array) -> tuple[LSTMCarry, jax.Array]:
        return self.core(carry, embedding)

    def decode(
        self, z: jax.Array, *, rng: jax.Array | None = None, actions: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        return self.decoder(z, rng=rng, actions=actions)

    def value(self, z: jax.Array) -> jax.Array:
        return self.value_head(z)[:, 0]


def make_policy(action_spec: Mapping[str, int], config: PolicyConfig = DEFAULT_CONFIG) -> PolicyNet:
    """The policy network for an environment's action spec (`env.action_spec()`)."""
    components = tuple((str(name), int(size)) for name, size in action_spec.items())
    if not components:
        raise ValueError("the action spec has no components")
    return PolicyNet(components, config)


def initial_carry(batch_size: int, hidden: int = DEFAULT_CONFIG.lstm_size) -> LSTMCarry:
    """The LSTM state at the start of an episode: zeros."""
    zeros = jnp.zeros((batch_size, hidden), jnp.float32)
    return zeros, zeros


@functools.cache
def _jitted_init(module: nn.Module) -> Callable[..., dict]:
    return jax.jit(module.init)


def _init(module: nn.Module, key: jax.Array, *args, **kwargs) -> dict:
    """`module.init`, jitted once per module, with the non-partitionable threefry: XLA:CPU
    compiles the random draws of initialisers several times faster that way (on 2 busy cores,
    86 draws shaped like the policy's: 15 s against 83 s; a small critic's 6: 1.6 s against 9 s).
    Equal modules share the compiled init (a fresh `jax.jit` would compile again each time)."""
    with jax.threefry_partitionable(False):
        return _jitted_init(module)(key, *args, **kwargs)


def init_policy(rng: jax.Array, module: PolicyNet, image_shape: tuple[int, int, int]) -> dict:
    """Variables of the policy for canvases (and, when conditional, targets) of shape (H, W, C)."""
    canvas = jnp.zeros((1, *image_shape), jnp.float32)
    inputs = PolicyInputs(
        canvas,
        jnp.zeros((1, len(module.action_spec)), jnp.int32),
        canvas if module.config.conditional else None,
    )
    init_rng, sample_rng = jax.random.split(rng)
    carry = initial_carry(1, module.config.lstm_size)
    return _init(module, init_rng, inputs, carry, rng=sample_rng)


def _apply_fn(policy: PolicyNet | Callable[..., Any]) -> Callable[..., Any]:
    return policy.apply if isinstance(policy, nn.Module) else policy


def policy_step(
    params: dict,
    module: PolicyNet | Callable[..., Any],
    inputs: PolicyInputs,
    carry: LSTMCarry,
    rng: jax.Array,
) -> PolicyOutput:
    """Samples a_{t+1} ~ pi(. | s_t) (actors). Jit with `static_argnums=1` or a partial.

    module: the PolicyNet or its `apply` (what `TrainState.apply_fn` holds).
    """
    return _apply_fn(module)(params, inputs, carry, rng=rng)


def policy_evaluate(
    params: dict, module: PolicyNet, inputs: PolicyInputs, carry: LSTMCarry, actions: jax.Array
) -> PolicyOutput:
    """Scores given actions int [B, num_components] under pi(. | s_t) (teacher forcing)."""
    return module.apply(params, inputs, carry, actions=actions)


def action_logits(
    params: dict, module: PolicyNet, inputs: PolicyInputs, carry: LSTMCarry, actions: jax.Array
) -> dict[str, jax.Array]:
    """{component: logits [B, n]} of each categorical, conditioned on the preceding components
    of `actions`; spatial logits reshape to [B, grid, grid] (fig. 6.6 style heat maps)."""

    def logits(policy: PolicyNet) -> dict[str, jax.Array]:
        _, z = policy.recur(carry, policy.encode(inputs))
        return policy.decode(z, actions=actions)[3]

    return module.apply(params, method=logits)


def unroll(
    params: dict,
    module: PolicyNet | Callable[..., Any],
    canvases: jax.Array,
    last_actions: jax.Array,
    actions: jax.Array,
    target: jax.Array | None = None,
    carry: LSTMCarry | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """log pi(a_t | s_t), entropy and V(s_t), each [T, B], of stored trajectories (learner).

    canvases: float [T, B, H, W, C] seen before each action; last_actions, actions: int
    [T, B, num_components]; target: float [B, H, W, C'] for the whole episode (conditional
    policies); carry: the LSTM state before step 0 (zeros by default; needed when `module` is
    the PolicyNet's `apply` rather than the module). The encoder and decoder run once over all
    T * B steps; only the LSTM is scanned over time.
    """
    chex.assert_rank([canvases, last_actions, actions], [5, 3, 3])
    chex.assert_equal_shape([last_actions, actions])
    chex.assert_equal_shape_prefix([canvases, actions], 2)
    steps, batch = actions.shape[:2]

    def merge(x: jax.Array) -> jax.Array:
        return x.reshape(steps * batch, *x.shape[2:])

    if target is not None:  # one per episode: the encoder broadcasts it over the T steps
        chex.assert_rank(target, 4)
        chex.assert_axis_dimension(target, 0, batch)
    apply = _apply_fn(module)
    inputs = PolicyInputs(merge(canvases), merge(last_actions), target)
    embeddings = apply(params, inputs, method=PolicyNet.encode)
    if carry is None:
        if not isinstance(module, nn.Module):
            raise ValueError("with an apply function, give `carry` (initial_carry(batch, size))")
        carry = initial_carry(batch, module.config.lstm_size)

    def recur(carry: LSTMCarry, embedding: jax.Array) -> tuple[LSTMCarry, jax.Array]:
        return apply(params, carry, embedding, method=PolicyNet.recur)

    _, z = jax.lax.scan(recur, carry, embeddings.reshape(steps, batch, -1))

    def score(policy: PolicyNet, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        _, log_prob, entropy, _ = policy.decode(z, actions=merge(actions))
        return log_prob, entropy, policy.value(z)

    outputs = apply(params, merge(z), method=score)
    return tuple(x.reshape(steps, batch) for x in outputs)


class Critic(nn.Module):
    """The WGAN-GP critic D(x), or D(x | x_target) when conditional (eq. 6.3.1, 6.3.6; app. A.2).

    images (and target): float [B, H, W, C] in [0, 1]. Returns float32 [B].
    """

    conditional: bool = False
    channels: tuple[int, ...] = (64, 128, 256, 512)
    layer_norm: bool = True

    @nn.compact
    def __call__(self, images: jax.Array, target: jax.Array | None = None) -> jax.Array:
        chex.assert_rank(images, 4)
        x = images.astype(jnp.float32)
        if self.conditional:
            if target is None:
                raise ValueError("a conditional critic needs `target` images (eq. 6.3.6)")
            chex.assert_equal_shape_prefix([images, target], 3)
            x = jnp.concatenate([x, target.astype(jnp.float32)], -1)
        elif target is not None:
            raise ValueError("this critic is unconditional; build it with conditional=True")
        x = 2.0 * x - 1.0
        for i, features in enumerate(self.channels):
            x = layers.Conv(features, (4, 4), (2, 2), name=f"conv_{i}")(x)
            if self.layer_norm and i > 0:
                x = nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1, name=f"norm_{i}")(x)
            x = nn.leaky_relu(x, 0.2)
        return nn.Dense(1, name="output")(x.reshape(x.shape[0], -1))[:, 0]


def init_critic(rng: jax.Array, critic: Critic, image_shape: tuple[int, int, int]) -> dict:
    """Variables of the critic for images (and, when conditional, targets) of shape (H, W, C)."""
    images = jnp.zeros((1, *image_shape), jnp.float32)
    return _init(critic, rng, images, images if critic.conditional else None)
