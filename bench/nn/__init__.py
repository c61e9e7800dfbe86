"""Layers, losses and text sides shared by every neural model (one implementation each)."""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
