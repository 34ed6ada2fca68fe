"""PyTorch reference of ``mla_cache_append``, built from the training ops' references (RMSNorm, RoPE)."""

from ..down_norm_up.reference import norm_forward
from ..mla_rope.reference import cos_sin_at, rotate_interleaved


def cache_append(c_kv, k_pe, cos, sin, positions, ckv_cache, kpe_cache, slot_mapping, norm_weight, eps) -> None:
    # Negative slots are padding; slots past the cache and positions past the tables (unchecked values) are
    # skipped and clamped as the kernel does, so that no value indexes outside a tensor.
    keep = (slot_mapping >= 0) & (slot_mapping < ckv_cache.shape[0] * ckv_cache.shape[1])
    slots = slot_mapping[keep].long()
    latent = c_kv[keep]
    if norm_weight is not None:
        latent = norm_forward(latent, norm_weight, eps)[0]
    rope_dim = k_pe.shape[-1]
    rows = positions[keep].long().clamp(0, cos.shape[0] - 1)
    cos_rows, sin_rows = cos_sin_at(cos, sin, rope_dim, (len(slots),), rows)
    rotated = rotate_interleaved(k_pe[keep][:, None, :], cos_rows, sin_rows)[:, 0]
    ckv_cache.view(-1, ckv_cache.shape[-1])[slots] = latent.to(ckv_cache.dtype)
    kpe_cache.view(-1, rope_dim)[slots] = rotated.to(kpe_cache.dtype)
