"""Shared test settings: tiny, single-threaded, offline."""

from __future__ import annotations

import os

# Tests never touch the network: timm/huggingface fail fast instead of retrying the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIMM_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
