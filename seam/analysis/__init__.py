"""The analysis lint, apply and audit share (no LibCST): which places decide on MLA, with their kind and
spans (``decisions``), which values carry MLA (``expressions``, ``flow``), which names are the seam and where
relative imports lead (``seam_bindings``)."""
