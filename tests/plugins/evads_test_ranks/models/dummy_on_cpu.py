"""lmms-eval's ``dummy`` model, placed on the CPU for multi-rank runs."""

import torch
from lmms_eval.models.simple.dummy import Dummy


class DummyOnCpu(Dummy):
    @property
    def device(self) -> torch.device:
        return torch.device("cpu")
