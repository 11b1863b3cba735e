"""pixelforge studio: a local web page and JSON API over trained runs (``pixelforge serve``).

Needs the optional extra ``serve`` (FastAPI + uvicorn): ``pip install "pixelforge[serve]"``.
``import pixelforge`` never imports this package; importing it without the extra raises an
ImportError that says how to install it.
"""
from __future__ import annotations

import ipaddress
import socket

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"pixelforge studio needs the serve extra: pip install \"pixelforge[serve]\" ({e})") from None

from .app import LOOPBACK_HOSTS, create_app
from .runs import Run, load_runs

__all__ = ["create_app", "load_runs", "Run", "serve", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(paths, *, host="127.0.0.1", port=7860, token=None, queue_size=16, device="cpu", log_level="info"):
    """Serve the runs in ``paths`` until interrupted. A host other than loopback needs a token
    (the studio runs arbitrary amounts of compute for whoever reaches it)."""
    if not is_loopback(host) and not token:
        raise ValueError(f"--host {host}: serving beyond this machine needs --token (every request must carry it)")
    if token is not None and len(token) < 8:
        raise ValueError("--token: use at least 8 characters")
    runs = load_runs(paths, device=device)
    allowed = (*LOOPBACK_HOSTS, socket.gethostname()) if is_loopback(host) else None
    app = create_app(runs, token=token, queue_size=queue_size, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    print(f"pixelforge studio: {len(runs)} run(s) ({', '.join(runs)}) at http://{shown}:{port}/"
          + (f"?token={token}" if token else ""), flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
    return 0
