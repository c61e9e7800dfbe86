"""Decoders out of a latent space, their reconstruction losses, and a latent-prior critic.

Shared by every model that reconstructs its inputs from a code (JWAE; the proposed model's
autoencoders can reuse the same parts):

:class:`MLPDecoder`
    code -> Linear/ReLU stack -> vector. JWAE's image decoder is ``MLPDecoder(d, (1024, 1024),
    feature_dim)`` (1024 -> 1024 -> 1024 -> features); the same class reconstructs a frozen
    sentence vector when the text side is ``minilm``.
:class:`GRUTextDecoder`
    a conditional GRU language model trained with **teacher forcing**: at step t it reads the
    previous gold token (``<start>`` first) and a projection of the code, and predicts token
    t. **Word dropout** replaces input words (never ``<start>`` or padding) by ``<unk>``
    with probability ``word_dropout`` during training, so the decoder must lean on the code
    rather than on the previous word (Bowman et al. 2016; 0.2 in the JWAE authors' code).
:func:`l1_reconstruction`, :func:`squared_reconstruction`, :func:`sequence_nll`
    per-sample losses (summed over the vector's entries / the sentence's tokens), averaged
    over the batch: "0.05 x L1 per sample" and "0.005 x NLL per sample" in JWAE's weighting.
:class:`LatentCritic` with :func:`critic_loss` / :func:`fooling_loss` and :func:`sample_prior`
    the WAE-GAN prior term (Tolstikhin et al. 2018): an MLP tells prior samples (label 1)
    from codes (label 0) with a logistic loss, and the encoders are trained with the
    non-saturating loss ``-log D(code)`` to make their codes look like prior samples.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# -- decoders ----------------------------------------------------------------------------


class MLPDecoder(nn.Module):
    """``code -> [Linear -> ReLU] * len(hidden) -> Linear -> out_dim`` (no output activation)."""

    def __init__(self, code_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        sizes = [code_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)


def word_dropout(tokens: torch.Tensor, rate: float, unk_id: int, keep_ids: Sequence[int] = (0,),
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``tokens`` with each entry not in ``keep_ids`` replaced by ``unk_id`` with probability ``rate``.

    Returns ``tokens`` itself when ``rate`` is 0. Random numbers come from ``generator`` or
    torch's global RNG (seeded and checkpointed by the training loop).
    """
    if rate <= 0:
        return tokens
    drop = torch.rand(tokens.shape, generator=generator, device=tokens.device) < rate
    for keep in keep_ids:
        drop &= tokens != keep
    return tokens.masked_fill(drop, unk_id)


class GRUTextDecoder(nn.Module):
    """A GRU language model conditioned on a code, trained with teacher forcing.

    Input at step t: ``[W_c code ; E(token_t)]`` (the code projected to ``word_dim`` and
    concatenated to every input word, as in the JWAE authors' decoder), initial state zero;
    ``num_layers`` stacked GRU layers of ``hidden_size``; a linear layer to vocabulary
    logits. :meth:`nll` runs packed sequences and scores only real target tokens, so padding
    costs nothing; :meth:`forward` returns the padded log-probabilities for inspection (the
    GRU is causal, so padding after a sentence's end can't change its predictions).
    """

    def __init__(self, vocab_size: int, code_dim: int, word_dim: int = 300, hidden_size: int = 1024,
                 num_layers: int = 2, word_dropout: float = 0.2, pad_id: int = 0, start_id: int = 1,
                 unk_id: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=pad_id)
        self.code_proj = nn.Linear(code_dim, word_dim)
        self.rnn = nn.GRU(2 * word_dim, hidden_size, num_layers, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.word_dropout = word_dropout
        self.pad_id, self.start_id, self.unk_id = pad_id, start_id, unk_id
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.xavier_uniform_(self.code_proj.weight)
        nn.init.zeros_(self.code_proj.bias)

    @staticmethod
    def split(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: inputs ``tokens[:, :-1]`` (``<start> w1 .. wn``), targets ``tokens[:, 1:]``
        (``w1 .. wn <end>``)."""
        return tokens[:, :-1], tokens[:, 1:]

    def _states(self, code: torch.Tensor, inputs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Top-layer GRU states ``(batch, steps, hidden)`` for teacher-forced ``inputs``
        (word dropout applied in training mode); packed when ``lengths`` (input lengths) are given."""
        if self.training:
            inputs = word_dropout(inputs, self.word_dropout, self.unk_id, (self.pad_id, self.start_id))
        words = self.embed(inputs)
        condition = self.code_proj(code)[:, None, :].expand(-1, words.shape[1], -1)
        sequence = torch.cat([condition, words], dim=2)
        if lengths is None:
            return self.rnn(sequence)[0]
        packed = pack_padded_sequence(sequence, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=inputs.shape[1])[0]

    def forward(self, code: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities ``(batch, len - 1, vocab)`` for padded ``tokens`` (with
        ``<start>``/``<end>``), aligned with the targets of :meth:`split`."""
        inputs, _ = self.split(tokens)
        return F.log_softmax(self.out(self._states(code, inputs, None)), dim=-1)

    def nll(self, code: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sentence NLL ``(batch,)``, summed over each sentence's real target tokens.

        ``lengths`` are the token counts with ``<start>``/``<end>`` (as :class:`TokenizedCaptions`
        gives them); without them they are counted from the padding.
        """
        inputs, targets = self.split(tokens)
        if lengths is None:
            lengths = (tokens != self.pad_id).sum(dim=1)
        states = self._states(code, inputs, (lengths - 1).clamp_min(1))
        real = targets != self.pad_id
        token_nll = F.cross_entropy(self.out(states[real]), targets[real], reduction="none")
        rows = torch.arange(tokens.shape[0], device=tokens.device)[:, None].expand_as(targets)[real]
        return torch.zeros(tokens.shape[0], dtype=token_nll.dtype, device=tokens.device).index_add(0, rows, token_nll)


# -- reconstruction losses ------------------------------------------------------------------


def l1_reconstruction(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the per-sample summed absolute error (0 for an empty batch)."""
    if prediction.shape[0] == 0:
        return prediction.sum() * 0
    return (prediction - target).abs().sum(dim=1).mean()


def squared_reconstruction(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the per-sample summed squared error (0 for an empty batch)."""
    if prediction.shape[0] == 0:
        return prediction.sum() * 0
    return (prediction - target).pow(2).sum(dim=1).mean()


def sequence_nll(log_probs: torch.Tensor, targets: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Per-sequence negative log-likelihood ``(batch,)``, summed over non-padding targets."""
    picked = log_probs.gather(2, targets.unsqueeze(2)).squeeze(2)
    return -(picked * (targets != pad_id)).sum(dim=1)


# -- the latent-prior critic (WAE-GAN) ----------------------------------------------------------


class LatentCritic(nn.Module):
    """MLP ``code_dim -> hidden -> 1`` with LeakyReLU; outputs a logit (high = "prior sample")."""

    def __init__(self, code_dim: int, hidden: int = 256, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(code_dim, hidden), nn.LeakyReLU(negative_slope), nn.Linear(hidden, 1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.net(codes).squeeze(-1)


def sample_prior(n: int, dim: int, on_sphere: bool = False, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples of N(0, I_dim); with ``on_sphere`` projected onto the sphere of radius
    sqrt(dim), where N(0, I) concentrates in high dimension (so the directions stay uniform)."""
    samples = torch.randn(n, dim, generator=generator, device=device)
    if on_sphere:
        samples = samples * (math.sqrt(dim) / samples.norm(dim=1, keepdim=True).clamp_min(1e-8))
    return samples


def critic_loss(critic: nn.Module, prior_samples: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Logistic loss of the critic: prior samples are real (1), codes fake (0); each term a batch mean.

    ``codes`` should be detached by the caller so that only the critic learns from this loss.
    """
    real = critic(prior_samples)
    fake = critic(codes)
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def fooling_loss(critic: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """Non-saturating encoder loss ``mean(-log D(code))``: small when codes pass for prior samples."""
    if codes.shape[0] == 0:
        return codes.sum() * 0
    logits = critic(codes)
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
