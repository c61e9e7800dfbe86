"""Aligning two batches without pairs, as functions of tensors: one implementation each.

* :func:`sinkhorn_log_plan`: the entropic optimal-transport plan between two batches with
  uniform marginals (log domain, so a small epsilon does not underflow);
* :func:`plan_kl`: the KL divergence between a teacher's transport plan and a student's,
  with the gradient of the student's plan taken by the envelope theorem (SOTAlign's KLOT);
* :func:`mmd2`: the squared maximum mean discrepancy between two batches under a sum of
  Gaussian kernels (SUE's refinement signal).
"""

from __future__ import annotations

import numpy as np
import torch


# -- entropic optimal transport --------------------------------------------------------------------
def sinkhorn_log_plan(scores: torch.Tensor, epsilon: float, iterations: int = 50) -> torch.Tensor:
    """The log of the entropic OT plan that maximises ``<P, scores> + epsilon * H(P)`` between uniform
    marginals over the rows and the columns of ``scores`` (n, m); its entries sum to 1.

    Log-domain Sinkhorn iterations (stable for a small ``epsilon``), without gradients: callers that
    train through a plan use :func:`plan_kl`, whose gradient needs no unrolling."""
    with torch.no_grad():
        kernel = scores.detach().double() / epsilon  # float64: faster than float32 here, and exact
        n, m = kernel.shape
        log_a, log_b = -np.log(n), -np.log(m)
        u = torch.zeros(n, dtype=kernel.dtype, device=kernel.device)
        v = torch.zeros(m, dtype=kernel.dtype, device=kernel.device)
        for _ in range(iterations):
            u = log_a - torch.logsumexp(kernel + v[None, :], dim=1)
            v = log_b - torch.logsumexp(kernel + u[:, None], dim=0)
        return (kernel + u[:, None] + v[None, :]).to(scores.dtype)


def plan_kl(student_scores: torch.Tensor, teacher_scores: torch.Tensor, student_epsilon: float,
            teacher_epsilon: float, iterations: int = 50) -> torch.Tensor:
    """``KL(P_teacher || P_student)`` between the entropic OT plans of two score matrices over the same
    batch (SOTAlign's KLOT divergence). Its value is the KL; its gradient with respect to
    ``student_scores`` is ``(P_student - P_teacher) / student_epsilon``, which the envelope theorem
    gives for the exact plan, so the Sinkhorn iterations are not differentiated through."""
    log_student = sinkhorn_log_plan(student_scores, student_epsilon, iterations)
    log_teacher = sinkhorn_log_plan(teacher_scores, teacher_epsilon, iterations)
    teacher = log_teacher.exp()
    value = (teacher * (log_teacher - log_student)).sum()
    surrogate = ((log_student.exp() - teacher) * student_scores).sum() / student_epsilon
    return (value - surrogate).detach() + surrogate


# -- distribution matching -------------------------------------------------------------------------
def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0)) -> torch.Tensor:
    """The (biased, V-statistic) squared MMD between the rows of ``x`` and ``y`` under the sum of
    Gaussian kernels ``exp(-|a - b|^2 / (2 s^2))``, one per bandwidth ``s`` (relative to the median
    pairwise distance of the two batches together, detached, so the scale follows the embeddings)."""
    both = torch.cat([x, y])
    distances = torch.cdist(both, both).pow(2)
    median = distances.detach()[distances.detach() > 0].median() if (distances.detach() > 0).any() else None
    base = median.clamp_min(1e-12) if median is not None else torch.ones((), device=x.device)
    kernel = sum(torch.exp(-distances / (2 * s * s * base)) for s in bandwidths)
    n = x.shape[0]
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()
