"""Whether a model hub can be reached (offline switches, then a quick DNS look-up)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

__all__ = ["hub_unavailable", "TRUTHY"]

TRUTHY = frozenset({"1", "true", "yes", "on"})


def hub_unavailable() -> str | None:
    """Why timm's download cannot work right now, or None: an offline switch, or the hub's host not resolving.

    The DNS check makes an offline machine fail in milliseconds instead of sitting through the hub client's retries.
    """
    for var in ("QUICKLEARN_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in TRUTHY:
            return f"download skipped as {var}=1"
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return f"no network: {host} does not resolve"
    return None
