"""What a training stage feeds its trainable layers: images, or frozen-prefix features cached once.

A stage splits the model's stages into a frozen prefix (leading stages with no trainable
parameter) and a suffix. Uncached, every batch goes uint8 -> float -> augment -> normalise ->
prefix (no grad, eval mode) -> suffix. Cached, the prefix runs once per split (eval mode, no
grad) and the suffix trains on the stored features: the frozen layers cost one forward per image
instead of one per epoch. Exact when augmentation is off (batch norm in eval mode is per-sample),
so the cache is used only then, or with a fixed number of pre-augmented views per train image
(`views` > 1; view 0 is the plain image; views come from a generator seeded per stage so a resumed
run rebuilds the same ones).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from thtl_bench.engine import runtime
from thtl_bench.engine.augment import augment, normalise, to_float


class Suffix(torch.nn.Module):
    """The trainable part as a module (what torch.compile gets): the model's last stages."""

    def __init__(self, model, names: list[str]):
        super().__init__()
        self.model, self.start = model, len(model.stages) - len(names)
        if list(model.stages)[self.start:] != list(names):
            raise ValueError(f"suffix {names} is not the tail of the stages {list(model.stages)}")

    def forward(self, x):
        return self.model.forward_range(x, self.start)


class Feeder:
    def __init__(self, model, prefix: list[str], splits: dict, *, device, amp, batch_size: int,
                 aug_cfg: dict, augment_train: bool, cache: bool, views: int, view_seed: int,
                 channels_last: bool, aug_gen: torch.Generator, max_cache_bytes: float):
        self.model, self.prefix, self.device, self.amp = model, list(prefix), device, amp
        self.bs, self.aug_cfg, self.aug_gen = batch_size, aug_cfg, aug_gen
        self.channels_last = channels_last
        self.images = {k: v[0] for k, v in splits.items()}  # uint8 NHWC on device
        self.labels = {k: v[1] for k, v in splits.items()}
        self._host_labels: dict[str, np.ndarray] = {}
        for name in self.prefix:  # frozen means frozen, also while probing shapes
            model.stages[name].eval()
        self.views = max(1, int(views)) if cache else 1
        self.cache = bool(cache and self.prefix) and self._fits(max_cache_bytes)
        if cache and self.prefix and not self.cache:
            # Too large to hold: fall back to the uncached path; only multi-view caching changes
            # meaning (fixed views -> online augmentation), plain caching was exact anyway.
            augment_train = augment_train or views > 1
            self.views = 1
        self.augment_train = augment_train and not self.cache
        self.feats: dict[str, torch.Tensor] = {}
        self.cache_s = 0.0
        self.cache_images = 0
        if self.cache:
            self._build(view_seed)

    # -- images -> input of the suffix ---------------------------------------------------------
    def _pixels(self, u8: torch.Tensor, aug: bool, gen: torch.Generator | None = None) -> torch.Tensor:
        x = to_float(u8)
        if aug:
            x = augment(x, gen or self.aug_gen, self.aug_cfg)
        x = normalise(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def _prefix(self, x: torch.Tensor) -> torch.Tensor:
        with runtime.autocast(self.device, self.amp):
            return self.model.forward_range(x, 0, len(self.prefix))

    def _fits(self, max_bytes: float) -> bool:
        probe = self._prefix(self._pixels(self.images["train"][:1], False))
        n = sum(len(v) for v in self.images.values()) + (self.views - 1) * len(self.images["train"])
        return probe[0].numel() * probe.element_size() * n <= max_bytes

    @torch.no_grad()
    def _build(self, view_seed: int) -> None:
        """Run the frozen prefix once over every split (eval mode: frozen means frozen)."""
        gen = torch.Generator(device=self.aug_gen.device).manual_seed(view_seed)
        runtime.synchronize(self.device)
        t0 = time.perf_counter()
        with runtime.sync_check(self.device):
            for split, imgs in self.images.items():
                nviews = self.views if split == "train" else 1
                per_view = []
                for v in range(nviews):
                    chunks = [self._prefix(self._pixels(imgs[i:i + self.bs], v > 0, gen))
                              for i in range(0, len(imgs), self.bs)]
                    per_view.append(torch.cat(chunks))
                    self.cache_images += len(imgs)
                self.feats[split] = torch.stack(per_view) if split == "train" else per_view[0]
        runtime.synchronize(self.device)
        self.cache_s = time.perf_counter() - t0

    def batch(self, split: str, idx: torch.Tensor, train: bool, view: torch.Tensor | None = None):
        """(suffix input, labels) for rows `idx` of `split`. The engine passes indices already on
        the device (moved once per epoch), so a step makes no host round trip."""
        y = self.labels[split][idx]
        if self.cache:
            f = self.feats[split]
            if split == "train":
                f = f[view, idx] if view is not None else f[0, idx]
            else:
                f = f[idx]
            return f, y
        x = self._pixels(self.images[split][idx], train and self.augment_train)
        return (self._prefix(x) if self.prefix else x), y

    def size(self, split: str) -> int:
        return len(self.labels[split])

    def host_labels(self, split: str) -> np.ndarray:
        """The labels of a split on the host (copied once, not per epoch)."""
        if split not in self._host_labels:
            self._host_labels[split] = self.labels[split].cpu().numpy()
        return self._host_labels[split]
