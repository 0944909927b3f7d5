"""Mixed precision: the dtype a trial computes in, with the autocast and scaler that go with it.

``auto`` is bf16 on a GPU that has it (Ampere and later: no loss scaling needed), fp16 with a
gradient scaler on older GPUs, and fp32 on the CPU (CPU autocast is slower than fp32 for the
small networks mltune tunes). Weights stay fp32 in every case: logged models are fp32.
On CUDA, whatever is left in fp32 uses TF32 matmuls, except under an explicit ``fp32``, which
means full fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from mltune.core.errors import SpecError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16, resolved
    device_type: str

    def autocast(self) -> AbstractContextManager[object]:
        """The forward pass's context: autocast to the dtype, or nothing for fp32."""
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])

    def scaler(self) -> torch.amp.GradScaler:
        """fp16 needs loss scaling against underflowing gradients; the others pass through."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``precision`` of the spec on ``device``; a dtype the device cannot do is a SpecError."""
    cuda = device.type == "cuda"
    if name == "auto":
        name = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    elif name == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise SpecError("precision: 'bf16' is not supported by this GPU; use fp16, fp32 or auto")
    if cuda and torch.backends.cuda.matmul.allow_tf32 != (name != "fp32"):
        # TF32 for what stays fp32, unless full fp32 was asked for: process-wide flags,
        # written once per search (the first trial's), read by every later one and by the
        # other devices' loops, which run the same precision
        torch.backends.cuda.matmul.allow_tf32 = name != "fp32"
        torch.backends.cudnn.allow_tf32 = name != "fp32"
    return Precision(name, device.type)
