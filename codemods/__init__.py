"""seamfix's LibCST codemods (``seamfix apply``): route MLA branches found by the linter into the adapter."""
