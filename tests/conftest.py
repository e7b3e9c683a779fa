from __future__ import annotations

import os

import pytest
import torch

# Two CPU cores on CI: one intra-op thread per test process keeps timings stable and avoids
# oversubscription when ALE's own threads run beside torch.
torch.set_num_threads(int(os.environ.get("DISTRL_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
