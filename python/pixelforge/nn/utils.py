"""torch.nn.utils-style helpers (the implementations live in pixelforge.optim)."""
from ..optim import clip_grad_norm_  # noqa: F401
