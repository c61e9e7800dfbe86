"""One training step's losses: which chains run on which batch, and how the losses combine.

A stage-2 step sees three independent batches:

* ``paired``: image features and the captions linked to them (row i of one is the pair of
  row i of the other) — scenarios 3 (paired reconstruction) and 6 (paired retrieval);
* ``images`` and ``texts``: an unpaired image batch and an unpaired caption batch, drawn
  independently of each other, so no row of one is linked to any row of the other —
  scenarios 1 (auto-reconstruction, step 1 and step 2), 2 (cyclic reconstruction),
  4 (latent critics), 5 (domain critics) and 7 (pseudo-pair retrieval). Every loss on them
  is a mean over one modality's rows, or a critic comparison of two sets, so it doesn't
  depend on how the two batches are ordered relative to each other.

Only the chains a non-zero weight needs are computed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from unimodel import losses as L
from unimodel.config import UnimodelConfig
from unimodel.parts import Parts


def _scenario_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(UnimodelConfig) if "losses" in f.metadata]


# Read from the tags on UnimodelConfig's scenario weights (see unimodel.config.scenario).
MODEL_LOSS_WEIGHTS = {loss: f.name for f in _scenario_fields() for loss in f.metadata["losses"]}  # loss -> weight
CRITIC_WEIGHTS = {critic: f.name for f in _scenario_fields() for critic in f.metadata["critics"]}  # critic -> weight
UNPAIRED_WEIGHTS = tuple(f.name for f in _scenario_fields() if f.metadata["data"] == "unpaired")
PAIRED_WEIGHTS = tuple(f.name for f in _scenario_fields() if f.metadata["data"] == "paired")


@dataclass
class Batch:
    """Tensors of one step. Text entries are the pipeline's tuples: ``(tokens, lengths)`` or ``(vectors,)``."""

    paired_features: torch.Tensor | None = None
    paired_text: tuple | None = None
    images: torch.Tensor | None = None
    texts: tuple | None = None


def active(cfg, name: str) -> bool:
    return float(getattr(cfg, name)) != 0.0


def needs_unpaired(cfg) -> bool:
    return any(active(cfg, w) for w in UNPAIRED_WEIGHTS)


def needs_paired(cfg) -> bool:
    return any(active(cfg, w) for w in PAIRED_WEIGHTS)


def active_critics(cfg) -> list[str]:
    return [name for name, weight in CRITIC_WEIGHTS.items() if active(cfg, weight)]


class Forward:
    """The forward pass of one stage-2 step (embeddings, codes and chains), computed once and shared
    by the critic update and the model loss."""

    def __init__(self, parts: Parts, cfg, batch: Batch, train_step1: bool, max_violation: bool | None = None) -> None:
        self.parts, self.cfg, self.batch = parts, cfg, batch
        self.max_violation = cfg.max_violation if max_violation is None else max_violation
        on = lambda name: active(cfg, name)  # noqa: E731
        grad = torch.enable_grad() if train_step1 else torch.no_grad()
        self.paired_p = self.paired_w = self.p = self.w = None
        self.image_chains = self.text_chains = None
        with grad:
            if batch.paired_features is not None and needs_paired(cfg):
                self.paired_p = parts.embed_image(batch.paired_features)
                self.paired_w = parts.embed_text(batch.paired_text)
            if batch.images is not None and needs_unpaired(cfg):
                self.p = parts.embed_image(batch.images)
            if batch.texts is not None and needs_unpaired(cfg):
                self.w = parts.embed_text(batch.texts)
        # step1_mode "retrieval": the step-2 chains (squared errors, critics, pseudo pairs) start from
        # constants, so only step 1's own reconstruction and the paired hinge reach step 1
        self.shield_step1 = cfg.step1_mode == "retrieval"
        flags = dict(auto=on("w_auto"), translation=on("w_domain_adv"), pseudo=on("w_unpaired_retrieval"),
                     cycle=on("w_cyclic"), detach_pseudo=cfg.pseudo_detach)
        if self.p is not None:
            self.image_chains = parts.image_chains(self._chain_input(self.p), **flags)
        if self.w is not None:
            self.text_chains = parts.text_chains(self._chain_input(self.w), **flags)

    def _chain_input(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding.detach() if self.shield_step1 else embedding

    # -- critics ---------------------------------------------------------------------------
    def critic_inputs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """critic name -> (real, fake), detached."""
        cfg, out = self.cfg, {}
        vc, tc = self.image_chains, self.text_chains
        if vc is None or tc is None:
            return out
        if active(cfg, "w_latent_adv"):
            out["latent_critic"] = (tc.code.detach(), vc.code.detach())
        if active(cfg, "w_prior_adv"):
            codes = torch.cat([vc.code, tc.code]).detach()
            prior = L.prior_samples(codes.shape[0], codes.shape[1], cfg.prior_sigma, codes.device)
            out["prior_critic"] = (prior, codes)
        if active(cfg, "w_domain_adv"):
            out["text_emb_critic"] = (self.w.detach(), vc.translated.detach())
            out["image_emb_critic"] = (self.p.detach(), tc.translated.detach())
        return out

    def critic_losses(self, inputs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, tuple]:
        """critic name -> (loss to minimise, Wasserstein estimate)."""
        return {name: L.critic_loss(getattr(self.parts, name), real, fake, self.cfg.gp_weight)
                for name, (real, fake) in inputs.items()}

    # -- the model's losses ---------------------------------------------------------------------
    def model_losses(self) -> dict[str, torch.Tensor]:
        """Unweighted losses of every scenario whose weight is non-zero."""
        cfg, parts, out = self.cfg, self.parts, {}
        on = lambda name: active(cfg, name)  # noqa: E731
        vc, tc = self.image_chains, self.text_chains
        margin, hardest = cfg.margin, self.max_violation

        # 1. auto-reconstruction: step-1 autoencoders (when they train) and step-2 embedding autoencoders
        if on("w_step1") and self.p is not None and self.p.requires_grad:
            target = parts.image_encoder.standardize(self.batch.images)
            out["step1_image"] = L.feature_reconstruction(target, parts.image_decoder(self.p))
        if on("w_step1") and self.w is not None and parts.text_decoder is not None and self.w.requires_grad:
            tokens = self.batch.texts[0]
            out["step1_text"] = L.text_reconstruction(parts.text_decoder(self.w, tokens), tokens)
        # (the chains' sources are the embeddings as the chains saw them: constants under "retrieval")
        if on("w_auto") and vc is not None and tc is not None:
            out["auto"] = L.squared_error(vc.source, vc.auto) + L.squared_error(tc.source, tc.auto)
        # 2. cyclic reconstruction on unpaired data, both directions
        if on("w_cyclic") and vc is not None and tc is not None:
            out["cyclic"] = L.squared_error(vc.source, vc.cycle) + L.squared_error(tc.source, tc.cycle)
        # 3. paired reconstruction: each side of a pair translated into the other's space
        if self.paired_p is not None:
            paired_image_code = parts.image_code(self.paired_p)
            paired_text_code = parts.text_code(self.paired_w)
        if on("w_paired_recon") and self.paired_p is not None:
            p, w = self._chain_input(self.paired_p), self._chain_input(self.paired_w)
            image_code, text_code = ((parts.image_code(p), parts.text_code(w)) if self.shield_step1
                                     else (paired_image_code, paired_text_code))
            out["paired_recon"] = (L.squared_error(p, parts.image_from_code(text_code))
                                   + L.squared_error(w, parts.text_from_code(image_code)))
        # 4. latent critics: image codes vs text codes, and codes vs the prior
        if on("w_latent_adv") and vc is not None and tc is not None:
            out["latent_adv"] = L.alignment_loss(parts.latent_critic, vc.code, tc.code)
        if on("w_prior_adv") and vc is not None and tc is not None:
            out["prior_adv"] = L.generator_loss(parts.prior_critic, torch.cat([vc.code, tc.code]))
        # 5. domain critics: translated embeddings should pass for real ones
        if on("w_domain_adv") and vc is not None and tc is not None:
            out["domain_adv"] = (L.generator_loss(parts.text_emb_critic, vc.translated)
                                 + L.generator_loss(parts.image_emb_critic, tc.translated))
        # 6. paired retrieval on latent codes
        if on("w_paired_retrieval") and self.paired_p is not None:
            out["paired_retrieval"] = L.retrieval_loss(paired_image_code, paired_text_code, margin, hardest)
        # 7. unpaired retrieval: each item with the code of its translation into the other modality
        if on("w_unpaired_retrieval") and vc is not None and tc is not None:
            out["unpaired_retrieval"] = (
                L.pseudo_pair_loss(vc.code, vc.pseudo_code, True, margin, hardest)
                + L.pseudo_pair_loss(tc.code, tc.pseudo_code, False, margin, hardest))
        return out

    def total(self, model_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = [float(getattr(self.cfg, MODEL_LOSS_WEIGHTS[k])) * v for k, v in model_losses.items()]
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        return torch.stack(terms).sum()


def stage1_losses(parts: Parts, images: torch.Tensor | None, texts: tuple | None) -> dict[str, torch.Tensor]:
    """Step-1 autoencoders on their own: feature reconstruction of images, NLL of captions (gru)."""
    out = {}
    if images is not None:
        p = parts.embed_image(images)
        out["step1_image"] = L.feature_reconstruction(parts.image_encoder.standardize(images), parts.image_decoder(p))
    if texts is not None and parts.text_encoder is not None:
        tokens = texts[0]
        out["step1_text"] = L.text_reconstruction(parts.text_decoder(parts.embed_text(texts), tokens), tokens)
    return out
