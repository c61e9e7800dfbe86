"""Layers, losses and text pipelines shared by every neural model (one implementation each)."""
