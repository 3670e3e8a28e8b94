"""What every data set gives the trainer: fixed splits of tensors, served as minibatches."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch


@dataclass
class Split:
    """One split held in memory. `x` is either ready features (N, C, H, W) float32,
    or raw samples that `Dataset.featurize` turns into features batch by batch
    (audio: int16 waveforms, so that augmentation can run before the features)."""

    x: torch.Tensor
    y: torch.Tensor  # int64 class indices

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    name: str
    input_shape: tuple[int, int, int]  # (C, H, W) of one featurized sample
    classes: list[str]
    splits: dict[str, Split]  # "train", "val", "test"
    # raw batch, augment flag, generator -> float32 features (B, C, H, W)
    featurize: Callable[[torch.Tensor, bool, torch.Generator], torch.Tensor] | None = None
    info: dict = field(default_factory=dict)
    featurized: set[str] = field(default_factory=set)  # splits whose x already holds features

    def precompute(self, split: str) -> None:
        """Featurise a split once and keep the features (for training without augmentation:
        MFCCs then cost nothing per epoch)."""
        s = self.splits[split]
        if self.featurize is None or split in self.featurized or not len(s):
            return
        gen = torch.Generator().manual_seed(0)  # unused without augmentation
        x = torch.cat([self.featurize(s.x[i:i + 1000], False, gen).float() for i in range(0, len(s), 1000)])
        self.splits[split] = Split(x, s.y)
        self.featurized.add(split)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
        limit: int | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (features, labels). Deterministic for a given generator state."""
        s = self.splits[split]
        n = len(s) if limit is None else min(limit, len(s))
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        order = torch.randperm(len(s), generator=generator)[:n] if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            x = s.x[idx]
            if split in self.featurized:
                if augment:
                    raise ValueError(f"split {split} holds precomputed features: it cannot be augmented")
            elif self.featurize is not None:
                x = self.featurize(x, augment, generator)
            yield x.float(), s.y[idx]
