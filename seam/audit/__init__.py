"""``seamfix audit``: did the MLA-specific part of a change stay inside the seam?"""
