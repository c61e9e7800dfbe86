"""The twelve parts of the two-step model, each a small ``nn.Module``.

Step 1 (one autoencoder per modality, into that modality's own embedding space):

* :class:`FeatureEncoder` / :class:`FeatureDecoder` — image encoder/decoder, MLPs over the
  precomputed backbone features (standardised with training statistics kept as buffers, unless
  the config's ``standardize_features`` is off);
  the image embedding ``p`` is L2-normalised.
* text encoder and decoder — built by the model's text side (:mod:`bench.nn.text`): with
  ``gru`` the shared GRU encoder, giving the text embedding ``w``, and the GRU decoder
  conditioned on ``w``, trained with teacher forcing and word dropout. With ``minilm`` the
  frozen sentence vector *is* ``w`` and there is no step-1 text autoencoder (both text parts
  are ``None``).

Step 2 (between each embedding space and the shared latent space): :class:`ResidualMLP`
encoders ``E'_v``, ``E'_t`` and decoders ``G'_v``, ``G'_t``. Decoders end on the unit
sphere when the embedding spaces are L2-normalised, so a translated embedding lives where
real ones do.

Discriminators (:class:`Critic`, WGAN critics trained with a gradient penalty): on the
image-embedding space, the text-embedding space, the latent space (image codes vs text
codes) and the latent prior (codes vs samples of N(0, sigma^2 I)).

:class:`Parts` holds the twelve and names the translation chains the scenarios use.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from bench.nn import l2_normalize


def _linear(in_dim: int, out_dim: int, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class ResidualBlock(nn.Module):
    """``x + Linear(Dropout(ReLU(Linear(LayerNorm(x)))))`` (pre-norm residual block)."""

    def __init__(self, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = _linear(width, width)
        self.drop = nn.Dropout(dropout)
        self.fc2 = _linear(width, width)
        nn.init.zeros_(self.fc2.weight)  # each block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.drop(torch.relu(self.fc1(self.norm(x)))))


class ResidualMLP(nn.Module):
    """``in -> hidden -> blocks x ResidualBlock -> out``, plus a linear shortcut ``in -> out``.

    The shortcut lets the map be close to a linear one (what VSE++ uses for images) while
    the residual path adds non-linear corrections. ``linear_start`` zero-initialises the last
    layer of the non-linear path, so the map *starts* as its linear shortcut and grows
    non-linear only as far as the losses ask (on 6,000 Flickr8k images the non-linear maps
    overfit the pairs within two epochs otherwise). ``dropout`` applies to the hidden
    activations. ``normalize`` puts the output on the unit sphere.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, blocks: int = 1, normalize: bool = False,
                 shortcut: bool = True, dropout: float = 0.0, linear_start: bool = False) -> None:
        super().__init__()
        self.inp = _linear(in_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.out = _linear(hidden, out_dim)
        if linear_start and shortcut:
            nn.init.zeros_(self.out.weight)
        self.shortcut = _linear(in_dim, out_dim, bias=False) if shortcut else None
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        out = self.out(self.drop(torch.relu(self.norm(h))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return l2_normalize(out) if self.normalize else out


# -- step 1: images -------------------------------------------------------------------
class FeatureEncoder(nn.Module):
    """Image encoder: standardised backbone features -> MLP -> image embedding ``p``."""

    def __init__(self, feature_dim: int, embed_dim: int, hidden: int, blocks: int = 1, normalize: bool = True,
                 **mlp_options) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        self.net = ResidualMLP(feature_dim, embed_dim, hidden, blocks, normalize=normalize, **mlp_options)

    @torch.no_grad()
    def set_statistics(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(1e-3))

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(features))


class FeatureDecoder(nn.Module):
    """Image decoder: image embedding ``p`` -> MLP -> standardised backbone features."""

    def __init__(self, embed_dim: int, feature_dim: int, hidden: int, blocks: int = 1, **mlp_options) -> None:
        super().__init__()
        self.net = ResidualMLP(embed_dim, feature_dim, hidden, blocks, normalize=False, **mlp_options)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.net(p)


# -- discriminators --------------------------------------------------------------------
class Critic(nn.Module):
    """WGAN critic: MLP with LeakyReLU, no normalisation layers (the gradient penalty needs per-sample
    gradients), one unbounded score per sample.

    ``direction`` is a fixed random unit vector (a buffer) used only to put a batch into a
    canonical order before the gradient penalty pairs real and fake samples, so the
    penalty doesn't depend on the order the samples came in.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int = 2) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        modules: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            modules += [_linear(a, b), nn.LeakyReLU(0.2)]
        modules.append(_linear(dims[-1], 1))
        self.net = nn.Sequential(*modules)
        self.register_buffer("direction", l2_normalize(torch.randn(in_dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


# -- the twelve parts ------------------------------------------------------------------
STEP1_NAMES = ("image_encoder", "image_decoder", "text_encoder", "text_decoder")
STEP2_NAMES = ("image_emb_encoder", "image_emb_decoder", "text_emb_encoder", "text_emb_decoder")
CRITIC_NAMES = ("image_emb_critic", "text_emb_critic", "latent_critic", "prior_critic")
PART_NAMES = STEP1_NAMES + STEP2_NAMES + CRITIC_NAMES


class Parts:
    """The twelve parts, and the chains through them.

    Notation (the mission's): ``p`` image embedding, ``w`` text embedding, ``E'_v``/``G'_v``
    = ``image_emb_encoder``/``image_emb_decoder``, ``E'_t``/``G'_t`` the text ones.
    ``text_encoder``/``text_decoder`` are ``None`` with frozen sentence vectors.
    """

    def __init__(self, **parts: nn.Module | None) -> None:
        unknown = set(parts) - set(PART_NAMES)
        if unknown:
            raise ValueError(f"unknown parts: {sorted(unknown)}")
        for name in PART_NAMES:
            setattr(self, name, parts.get(name))

    # which parts exist
    def items(self, names=PART_NAMES) -> Iterator[tuple[str, nn.Module]]:
        for name in names:
            module = getattr(self, name)
            if module is not None:
                yield name, module

    def modules(self, names=PART_NAMES) -> dict[str, nn.Module]:
        return dict(self.items(names))

    def parameters(self, names=PART_NAMES) -> list[nn.Parameter]:
        return [p for _, m in self.items(names) for p in m.parameters()]

    def to(self, device) -> "Parts":
        for _, module in self.items():
            module.to(device)
        return self

    def train(self, mode: bool = True) -> None:
        for _, module in self.items():
            module.train(mode)

    # step 1
    def embed_image(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(features)

    def embed_text(self, text: tuple) -> torch.Tensor:
        """``w`` from the pipeline's batch: ``(tokens, lengths)`` for gru, ``(vectors,)`` for minilm."""
        if self.text_encoder is None:
            return text[0]
        return self.text_encoder(*text)

    # step 2, one hop
    def image_code(self, p: torch.Tensor) -> torch.Tensor:  # E'_v
        return self.image_emb_encoder(p)

    def text_code(self, w: torch.Tensor) -> torch.Tensor:  # E'_t
        return self.text_emb_encoder(w)

    def image_from_code(self, z: torch.Tensor) -> torch.Tensor:  # G'_v
        return self.image_emb_decoder(z)

    def text_from_code(self, z: torch.Tensor) -> torch.Tensor:  # G'_t
        return self.text_emb_decoder(z)

    # chains
    def image_to_text(self, p: torch.Tensor) -> torch.Tensor:
        """``G'_t(E'_v(p))``: an image embedding translated into the text-embedding space."""
        return self.text_from_code(self.image_code(p))

    def text_to_image(self, w: torch.Tensor) -> torch.Tensor:
        """``G'_v(E'_t(w))``."""
        return self.image_from_code(self.text_code(w))

    def image_auto(self, p: torch.Tensor) -> torch.Tensor:
        """``G'_v(E'_v(p))``."""
        return self.image_from_code(self.image_code(p))

    def text_auto(self, w: torch.Tensor) -> torch.Tensor:
        """``G'_t(E'_t(w))``."""
        return self.text_from_code(self.text_code(w))

    def image_cycle(self, p: torch.Tensor) -> torch.Tensor:
        """``G'_v(E'_t(G'_t(E'_v(p))))``: image -> latent -> text -> latent -> image."""
        return self.text_to_image(self.image_to_text(p))

    def text_cycle(self, w: torch.Tensor) -> torch.Tensor:
        """``G'_t(E'_v(G'_v(E'_t(w))))``."""
        return self.image_to_text(self.text_to_image(w))

    def image_chains(self, p: torch.Tensor, auto: bool = True, translation: bool = True, pseudo: bool = True,
                     cycle: bool = True, detach_pseudo: bool = True) -> "Chains":
        """Every chain that starts at image embeddings, each hop computed once.

        ``code = E'_v(p)``; ``auto = G'_v(code)``; ``translated = G'_t(code)``;
        ``back_code = E'_t(translated)``; ``cycle = G'_v(back_code)``; ``pseudo_code`` is
        ``back_code``, or ``E'_t(translated.detach())`` with ``detach_pseudo`` (the latent
        code of the pseudo caption of scenario 7, whose translation gets no gradient).
        """
        return _chains(p, self.image_code, self.image_from_code, self.text_from_code, self.text_code,
                       auto, translation, pseudo, cycle, detach_pseudo)

    def text_chains(self, w: torch.Tensor, auto: bool = True, translation: bool = True, pseudo: bool = True,
                    cycle: bool = True, detach_pseudo: bool = True) -> "Chains":
        """The mirror of :meth:`image_chains`: ``E'_t``, ``G'_t``, ``G'_v``, ``E'_v``, ``G'_t``."""
        return _chains(w, self.text_code, self.text_from_code, self.image_from_code, self.image_code,
                       auto, translation, pseudo, cycle, detach_pseudo)


class Chains:
    """Intermediate results of the chains from one modality's embeddings (``None`` if not computed)."""

    def __init__(self, source: torch.Tensor, code: torch.Tensor) -> None:
        self.source, self.code = source, code
        self.auto = self.translated = self.back_code = self.pseudo_code = self.cycle = None


def _chains(x, encode, decode_same, decode_other, encode_other, auto, translation, pseudo, cycle,
            detach_pseudo) -> Chains:
    out = Chains(x, encode(x))
    if auto:
        out.auto = decode_same(out.code)
    if translation or pseudo or cycle:
        out.translated = decode_other(out.code)
    if cycle or (pseudo and not detach_pseudo):
        out.back_code = encode_other(out.translated)
    if cycle:
        out.cycle = decode_same(out.back_code)
    if pseudo:
        out.pseudo_code = encode_other(out.translated.detach()) if detach_pseudo else out.back_code
    return out
