"""torch.nn.utils-style helpers (the implementations live in pixelforge.optim)."""


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale gradients in place so their global norm is at most ``max_norm``; returns the norm."""
    from ..optim import clip_grad_norm_ as impl  # noqa: PLC0415
    return impl(parameters, max_norm, norm_type, error_if_nonfinite)
