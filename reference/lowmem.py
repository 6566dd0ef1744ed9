"""Loading a checkpoint in another dtype than it is stored in, holding only what the weights need.

`from_pretrained(bf16 checkpoint, dtype=float32)` maps the safetensors files and converts every tensor,
and the mapped bfloat16 pages it read stay resident until loading ends: for Qwen3-4B the process peaks
at the float32 weights (14.98 GiB) *plus* the bfloat16 file (7.49 GiB), 22.5 GiB of a 23.5 GiB machine.
`reference.model.load` instead loads in the stored dtype (the weights stay memory-mapped, nothing is
read yet) and `convert_parameters` converts one parameter at a time, then tells the kernel it no longer
needs that parameter's mapped pages (madvise MADV_DONTNEED, only for read-only file mappings, where
the pages are clean and are read again from the file if anything touches them): the peak is the float32
weights plus one tensor. bfloat16 -> float32 is exact, so the weights are bit for bit what a direct load
gives; buffers (rotary inv_freq) are left as from_pretrained made them.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import sys

import torch

MADV_DONTNEED = 4


class _FileMappings:
    """The read-only file-backed mappings of this process (Linux /proc/self/maps), to look addresses up in."""

    def __init__(self):
        self.starts: list[int] = []
        self.ends: list[int] = []
        try:
            with open("/proc/self/maps") as fh:
                lines = fh.readlines()
        except OSError:
            return
        for line in lines:
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].strip().startswith("/") or "w" in parts[1]:
                continue  # anonymous, [heap]/[stack], or writable: never dropped
            start, end = (int(x, 16) for x in parts[0].split("-"))
            self.starts.append(start)
            self.ends.append(end)

    def covers(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.starts, start) - 1
        return i >= 0 and self.ends[i] >= end


def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _drop_pages(tensor: torch.Tensor, maps: _FileMappings, madvise) -> bool:
    """Release the resident pages under a CPU tensor that is a view of a read-only mapped file."""
    if madvise is None or tensor.device.type != "cpu" or tensor.nbytes == 0:
        return False
    page = mmap.PAGESIZE
    addr = tensor.data_ptr()
    start = (addr + page - 1) // page * page  # whole pages inside the tensor only
    end = (addr + tensor.nbytes) // page * page
    if end <= start or not maps.covers(start, end):
        return False
    return madvise(start, end - start, MADV_DONTNEED) == 0


@torch.no_grad()
def convert_parameters(model: torch.nn.Module, dtype: torch.dtype, device: torch.device | None = None) -> int:
    """Every floating-point parameter to `dtype` (on `device`), one at a time, in place (tied parameters stay
    one Parameter); buffers are not touched. Returns how many parameters' mapped pages were released."""
    maps, madvise = _FileMappings(), _madvise()
    seen: set[int] = set()
    dropped = 0
    for param in model.parameters():  # each shared (tied) Parameter once
        if id(param) in seen or not param.is_floating_point():
            continue
        seen.add(id(param))
        old = param.data
        if old.dtype == dtype and (device is None or old.device == device):
            continue
        param.data = old.to(device=device or old.device, dtype=dtype)
        dropped += _drop_pages(old, maps, madvise)  # while `old` still owns the range
        del old
    model.config.dtype = dtype
    return dropped
