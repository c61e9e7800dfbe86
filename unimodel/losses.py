"""The scenario losses, as functions of tensors (and of the critic modules for the adversarial ones).

Conventions: reconstruction losses are the squared L2 norm of the error per sample,
averaged over the batch (``‖p − p̂‖²``; the mission's formulas); feature reconstruction is
the per-element mean squared error of standardised features (so its scale doesn't grow
with the feature size); ranking losses are the shared VSE++ hinge
(:func:`bench.nn.losses.hinge_ranking_loss`, hardest negatives) on cosine scores,
divided by the batch size so that every loss is a per-sample mean and the weights in the
config are comparable.

Critics are WGAN critics with a gradient penalty (Gulrajani et al. 2017): the critic
minimises ``E[D(fake)] − E[D(real)] + λ E[(‖∇D(x̂)‖ − 1)²]`` at random interpolates
``x̂`` of real and fake samples; the model (generator) minimises ``−E[D(fake)]``. The
penalty pairs real and fake samples after putting each set in a canonical order (sorted
by the projection on a fixed direction) and then drawing a random pairing, so a loss on
an unpaired batch doesn't depend on how the two unpaired sets happen to be ordered
relative to each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.nn import l2_normalize
from bench.nn.decoders import sequence_nll, squared_reconstruction
from bench.nn.losses import hinge_ranking_loss


# -- scenarios 1-3: reconstruction ------------------------------------------------------
def squared_error(target: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """``mean_b ‖target_b − reconstruction_b‖²``: embedding auto-, cyclic and paired reconstruction."""
    return squared_reconstruction(reconstruction, target)


def feature_reconstruction(standardized_features: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Step-1 image autoencoder: per-element MSE on standardised backbone features."""
    return F.mse_loss(reconstruction, standardized_features)


def text_reconstruction(log_probs: torch.Tensor, tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Step-1 text autoencoder: negative log-likelihood per real target token (teacher forcing).

    ``log_probs`` ``(B, T-1, V)`` are the decoder's predictions of ``tokens[:, 1:]``
    (:class:`bench.nn.decoders.GRUTextDecoder`); padding is ignored.
    """
    targets = tokens[:, 1:]
    return sequence_nll(log_probs, targets, pad_id).sum() / (targets != pad_id).sum().clamp_min(1)


# -- scenarios 6-7: retrieval ---------------------------------------------------------------
def retrieval_loss(image_codes: torch.Tensor, text_codes: torch.Tensor, margin: float = 0.2,
                   max_violation: bool = True) -> torch.Tensor:
    """VSE++ hinge (hardest negatives) on cosine scores of row-aligned codes, per sample."""
    scores = l2_normalize(image_codes) @ l2_normalize(text_codes).T
    return hinge_ranking_loss(scores, margin, max_violation) / scores.shape[0]


def pseudo_pair_loss(codes: torch.Tensor, pseudo_codes: torch.Tensor, source_is_image: bool, margin: float = 0.2,
                     max_violation: bool = True) -> torch.Tensor:
    """Scenario 7: ``codes[i]`` (an item's own code) and ``pseudo_codes[i]`` (the code of its translation
    into the other modality) are a pseudo pair; the other rows are negatives. The score matrix is
    oriented image x caption, so the same hinge as for real pairs applies."""
    if source_is_image:
        return retrieval_loss(codes, pseudo_codes, margin, max_violation)
    return retrieval_loss(pseudo_codes, codes, margin, max_violation)


# -- scenarios 4-5: critics ---------------------------------------------------------------
def canonical_order(x: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``x`` sorted by its projection on ``direction``: the same rows give the same order."""
    return x[torch.argsort(x.detach() @ direction)]


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``E[(‖∇D(x̂)‖₂ − 1)²]`` at interpolates of (canonically ordered, randomly paired)
    real and fake samples. Both sets are treated as constants."""
    real, fake = real.detach(), fake.detach()
    n = min(real.shape[0], fake.shape[0])
    direction = critic.direction
    real, fake = canonical_order(real, direction), canonical_order(fake, direction)
    device = real.device
    real = real[torch.randperm(real.shape[0], generator=generator, device="cpu")[:n].to(device)]
    fake = fake[torch.randperm(fake.shape[0], generator=generator, device="cpu")[:n].to(device)]
    alpha = torch.rand(n, 1, generator=generator, device="cpu").to(device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.norm(dim=-1) - 1).pow(2).mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp_weight: float = 10.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's objective ``E[D(fake)] − E[D(real)] + λ·GP`` (to minimise), and the Wasserstein
    estimate ``E[D(real)] − E[D(fake)]`` (for logging). Real and fake are detached."""
    real, fake = real.detach(), fake.detach()
    distance = critic(real).mean() - critic(fake).mean()
    loss = -distance
    if gp_weight > 0:
        loss = loss + gp_weight * gradient_penalty(critic, real, fake, generator)
    return loss, distance.detach()


def generator_loss(critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """What the model minimises against a critic: ``−E[D(fake)]``."""
    return -critic(fake).mean()


def alignment_loss(critic: nn.Module, image_codes: torch.Tensor, text_codes: torch.Tensor) -> torch.Tensor:
    """Latent critic, model side: the Wasserstein estimate between text codes (its "real") and image
    codes (its "fake"), ``E[D(text)] − E[D(image)]``, minimised by both encoders at once."""
    return critic(text_codes).mean() - critic(image_codes).mean()


def prior_samples(n: int, dim: int, sigma: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    return sigma * torch.randn(n, dim, generator=generator, device="cpu").to(device or "cpu")
