"""seamfix's runtime: the Megatron-Core MLA adapter (``seamfix.runtime.megatron``, extra ``seamfix[megatron]``)
and fused MLA kernels (``seamfix.runtime.kernels``, extra ``seamfix[kernels]``)."""
