"""seamfix: keep Multi-Latent Attention special cases of a Megatron-Core stack behind one adapter seam."""

__version__ = "0.1.0"
