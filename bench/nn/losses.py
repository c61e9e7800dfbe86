"""Losses as functions of tensors."""

from __future__ import annotations

import torch


def hinge_ranking_loss(scores: torch.Tensor, margin: float = 0.2, max_violation: bool = True) -> torch.Tensor:
    """The VSE0 / VSE++ bidirectional hinge loss on a batch score matrix.

    ``scores[i, j]`` is the similarity of image i and caption j; the diagonal holds the
    positive pairs. For image query i every other caption j is a negative
    (``margin + s_ij - s_ii``); for caption query j every other image i is one
    (``margin + s_ij - s_jj``). The diagonal is masked. With ``max_violation`` (VSE++) only
    the hardest negative per row and per column counts; without it (VSE0) every
    violating negative does. Summed over the batch, as in the reference.
    """
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"hinge_ranking_loss needs a square score matrix, got {tuple(scores.shape)}")
    positives = scores.diag()
    cost_caption = (margin + scores - positives[:, None]).clamp(min=0)  # image query, negative captions
    cost_image = (margin + scores - positives[None, :]).clamp(min=0)  # caption query, negative images
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_caption = cost_caption.masked_fill(eye, 0)
    cost_image = cost_image.masked_fill(eye, 0)
    if max_violation:
        return cost_caption.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
    return cost_caption.sum() + cost_image.sum()
