"""The message of an ImportError met while importing megatron-core: what is missing, and what to install."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # installs megatron-core on first use


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            ModuleNotFoundError("No module named 'megatron'", name="megatron"),
            "seamfix.runtime.megatron needs megatron-core and torch: pip install 'seamfix[megatron]' "
            "(No module named 'megatron')",
        ),
        (
            ModuleNotFoundError("No module named 'triton.language'", name="triton.language"),
            "megatron-core is installed but importing it failed: No module named 'triton.language'; install triton",
        ),
        (  # main on Python 3.11: the module is there, the name is not; nothing to install
            ImportError("cannot import name 'override' from 'typing'", name="typing"),
            "megatron-core is installed but importing it failed: cannot import name 'override' from 'typing'",
        ),
        (
            ModuleNotFoundError("No module named 'megatron.core.fusions'", name="megatron.core.fusions"),
            "megatron-core is installed but importing it failed: No module named 'megatron.core.fusions'",
        ),
    ],
)
def test_the_message_names_what_is_really_missing(seam, error, message):
    assert str(seam.installed._explained(error)) == message
