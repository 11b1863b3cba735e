"""UNet2DModel against diffusers' UNet2DModel (the reference, where installed): the same random
weights give the same output to float32 rounding over the config vocabulary, and the same
gradients; the timestep sinusoids against their float64 closed form; config errors."""
import math

import numpy as np
import pytest

import pixelforge as pf
from pixelforge.models.unet import UNET_DEFAULTS, UNet2DModel, check_config, timestep_sinusoids

SMALL = dict(in_channels=1, out_channels=1, block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
             up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, layers_per_block=1,
             attention_head_dim=8)

# (config overrides, image size, with class labels): the vocabulary the issue lists
CONFIGS = {
    "two-heads": ({}, 8, False),
    "one-head-per-block": (dict(attention_head_dim=None), 8, False),
    "sin-cos-freq-shift-1-pad-0": (dict(flip_sin_to_cos=False, freq_shift=1, downsample_padding=0), 8, False),
    "layers-2-scale-shift-classes": (dict(layers_per_block=2, resnet_time_scale_shift="scale_shift",
                                          num_class_embeds=5), 8, True),
    "three-levels-rgb-16": (dict(in_channels=3, out_channels=3, block_out_channels=(16, 16, 32),
                                 down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                                 mid_block_scale_factor=1.414, norm_eps=1e-6, center_input_sample=True), 16, False),
    "28x28-7x7-bottom": (dict(block_out_channels=(16, 24, 32), down_block_types=("DownBlock2D",) * 2 + ("AttnDownBlock2D",),
                              up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), time_embedding_dim=48,
                              attn_norm_num_groups=4), 28, False),
    "four-levels-32-no-mid-attention": (dict(in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 32),
                                             down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4,
                                             add_attention=False, norm_num_groups=4), 32, False),
    "no-mid-block-odd-embedding": (dict(mid_block_type=None, time_embedding_dim=37), 8, False),
    "scale-shift-mid-attention-no-norm": (dict(resnet_time_scale_shift="scale_shift"), 8, False),
}


def _pair(cfg, seed=0):
    """A diffusers UNet with random weights (norms and biases too) and ours loaded from it."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(seed)
    ref = diffusers.UNet2DModel(**cfg)
    g = np.random.default_rng(seed)
    state = {k: (v.detach().numpy() + g.normal(0, 0.05, tuple(v.shape))).astype(np.float32)
             for k, v in ref.state_dict().items()}
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    ours = UNet2DModel(**cfg)
    ours.load_state_dict(state)
    return torch, ref, ours


def _rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_matches_diffusers(name):
    over, size, labelled = CONFIGS[name]
    cfg = {**SMALL, **over}
    torch, ref, ours = _pair(cfg)
    ref.eval()
    g = np.random.default_rng(1)
    n = 3
    x = g.standard_normal((n, cfg["in_channels"], size, size)).astype(np.float32)
    t = np.array([0, 417, 999])
    y = g.integers(0, cfg.get("num_class_embeds") or 1, n) if labelled else None
    with torch.no_grad():
        want = ref(torch.from_numpy(x), torch.from_numpy(t),
                   class_labels=None if y is None else torch.from_numpy(y)).sample.numpy()
    with pf.no_grad():
        got = ours(x, t, y).data
    assert got.shape == want.shape and got.dtype == np.float32
    assert _rel(got, want) <= 1e-5, name
    # a scalar timestep means the same step for every image
    with pf.no_grad():
        np.testing.assert_array_equal(ours(x[:1], 417, None if y is None else y[1:2]).data,
                                      ours(x[:1], np.array([417]), None if y is None else y[1:2]).data)


def test_backward_matches_torch():
    cfg = {**SMALL, "layers_per_block": 2, "resnet_time_scale_shift": "scale_shift", "attention_head_dim": None}
    torch, ref, ours = _pair(cfg, seed=2)
    g = np.random.default_rng(3)
    x = g.standard_normal((2, 1, 8, 8)).astype(np.float32)
    w = g.standard_normal((2, 1, 8, 8)).astype(np.float32)
    t = np.array([3, 700])
    xt = torch.from_numpy(x).requires_grad_(True)
    (ref(xt, torch.from_numpy(t)).sample * torch.from_numpy(w)).sum().backward()
    xp = pf.Tensor(x, requires_grad=True)
    (ours(xp, t) * pf.Tensor(w)).sum().backward()
    assert _rel(xp.grad, xt.grad.numpy()) <= 1e-4
    grads = dict(ours.named_parameters())
    # to_k's bias has an exactly-zero gradient (softmax ignores a constant added to every key):
    # both sides hold rounding noise there, so each tensor is judged against the largest gradient
    scale = max(float(np.abs(p.grad.numpy()).max()) for _, p in ref.named_parameters())
    for name, p in ref.named_parameters():
        want = p.grad.numpy()
        err = float(np.abs(np.asarray(grads[name].grad, np.float64) - want).max())
        assert err <= 1e-4 * max(float(np.abs(want).max()), 1e-3 * scale), name


def test_sinusoids_closed_form():
    t = np.array([0, 1, 17, 999])
    for dim, flip, shift in ((32, True, 0), (32, False, 1), (7, True, 0)):
        got = timestep_sinusoids(t, dim, flip, shift)
        half = dim // 2
        f = np.exp(-math.log(10000.0) * np.arange(half) / (half - shift))
        a = t[:, None] * f[None]
        want = np.concatenate([np.cos(a), np.sin(a)] if flip else [np.sin(a), np.cos(a)], 1)
        assert got.shape == (4, dim) and got.dtype == np.float32
        np.testing.assert_allclose(got[:, :2 * half], want, atol=2e-4)  # float32 arguments up to 999
        if dim % 2:
            assert (got[:, -1] == 0).all()


def test_defaults_are_diffusers():
    diffusers = pytest.importorskip("diffusers")
    import inspect
    params = inspect.signature(diffusers.UNet2DModel.__init__).parameters
    for k, v in UNET_DEFAULTS.items():
        assert params[k].default == v or tuple(params[k].default or ()) == v, k


def test_trains():
    m = UNet2DModel(**SMALL)
    opt = pf.optim.Adam(m.parameters(), lr=2e-3)
    g = np.random.default_rng(0)
    x = g.standard_normal((4, 1, 8, 8)).astype(np.float32)
    target = np.tanh(x)
    losses = []
    for _ in range(25):
        loss = pf.functional.mse_loss(m(x, np.full(4, 10)), pf.Tensor(target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("over, word", [
    (dict(foo=1), "foo"),
    (dict(down_block_types=("CrossAttnDownBlock2D", "DownBlock2D")), "down_block_types"),
    (dict(up_block_types=("UpBlock2D",)), "up_block_types"),
    (dict(act_fn="gelu"), "act_fn"),
    (dict(time_embedding_type="fourier"), "time_embedding_type"),
    (dict(resnet_time_scale_shift="spatial"), "resnet_time_scale_shift"),
    (dict(class_embed_type="timestep"), "class_embed_type"),
    (dict(downsample_type="resnet"), "downsample_type"),
    (dict(norm_num_groups=5), "norm_num_groups"),
    (dict(attention_head_dim=5), "attention_head_dim"),
    (dict(layers_per_block=0), "layers_per_block"),
    (dict(block_out_channels="16"), "block_out_channels"),
    (dict(dropout=1.5), "dropout"),
    (dict(norm_eps=0), "norm_eps"),
])
def test_config_errors_name_the_key(over, word):
    with pytest.raises(ValueError, match=word):
        UNet2DModel(**{**SMALL, **over})


def test_inert_keys_accepted_and_input_errors():
    m = UNet2DModel(**SMALL, _class_name="UNet2DModel", _diffusers_version="0.30.0", num_train_timesteps=1000)
    assert "_class_name" not in m.config and check_config(SMALL)["layers_per_block"] == 1
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="sample"):
        m(np.zeros((2, 3, 8, 8), np.float32), 1)
    with pytest.raises(ValueError, match="sample"):
        m(np.zeros((2, 1, 7, 7), np.float32), 1)
    with pytest.raises(ValueError, match="timesteps"):
        m(x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="class_labels"):
        m(x, 1, np.array([0, 1]))
    with pytest.raises(ValueError, match="class_labels"):
        UNet2DModel(**SMALL, num_class_embeds=3)(x, 1)
