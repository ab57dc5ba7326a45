import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_morpher():
    """One ``tiny`` Morpher on CPU for the whole session (loading it takes a few seconds)."""
    import torch

    torch.set_num_threads(1)
    from morph import Morpher

    return Morpher("tiny", device="cpu")
