"""Published baselines on the shared interface: ``cca`` (closed form), ``vse`` (VSE++), ``jwae`` (JWAE)."""
