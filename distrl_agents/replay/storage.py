"""Frame storage backends for the replay buffer.

Both backends hold one preallocated ring of single frames ``[capacity, *frame_shape]`` (the newest
frame of each stored observation; stacks are rebuilt at sample time) and expose the same three
operations: ``write`` a row of frames, ``gather`` stacks for a batch straight into a torch tensor on
the training device, and chunked ``save``/``load`` streams.

* :class:`NumpyFrameStore` keeps frames in host memory (numpy). On a CUDA training device the
  gather writes straight into pinned host memory and the copy to the GPU is ``non_blocking``.
* :class:`TorchFrameStore` keeps frames in a torch tensor on any device (``storage_device="cuda"``
  keeps the whole buffer on the GPU, so sampling moves only indices to the GPU). The code is
  device-generic and is tested on the CPU through exactly the same torch calls.

Only frames live here; the small per-transition metadata and the sum tree stay in numpy on the host
(index arithmetic on a batch of 32 is cheaper there than launching GPU kernels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

CHUNK_BYTES = 16 << 20  # save/load stream granularity (16 MiB)


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype with the same layout as numpy ``dtype``."""
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class FrameStore:
    """Interface shared by the two backends."""

    capacity: int
    frame_shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        raise NotImplementedError

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.frame_shape, dtype=np.int64)) * self.dtype.itemsize

    def write(self, slots: np.ndarray, frames: np.ndarray | torch.Tensor) -> None:
        """Store ``frames`` ``[K, *frame]`` at ``slots`` ``[K]``."""
        raise NotImplementedError

    def gather(
        self, slots: np.ndarray, pad: np.ndarray | None, device: torch.device
    ) -> torch.Tensor:
        """Frames at ``slots`` (any int shape ``[...]``) -> ``[..., *frame]`` tensor on ``device``,
        with the entries where ``pad`` (bool, same shape as ``slots``) is True set to zero."""
        raise NotImplementedError

    def iter_chunks(self, ranges: list[tuple[int, int]]) -> Iterator[memoryview]:
        """The raw bytes of the frame rows ``[start, stop)`` of each range, C order, in chunks of
        about ``CHUNK_BYTES`` (no full copy). Only the filled part of a ring is ever saved."""
        raise NotImplementedError

    def load_chunks(
        self, read_chunk: Callable[[memoryview], None], ranges: list[tuple[int, int]]
    ) -> None:
        """Fill the rows of ``ranges`` from a byte stream (``read_chunk(buf)`` fills ``buf``)."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class NumpyFrameStore(FrameStore):
    def __init__(self, capacity: int, frame_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.capacity = capacity
        self.frame_shape = frame_shape
        self.dtype = np.dtype(dtype)
        # np.zeros maps fresh zero pages lazily: resident memory grows as the ring is filled.
        self.frames = np.zeros((capacity, *frame_shape), dtype=self.dtype)  # [C, *frame]

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)

    def write(self, slots: np.ndarray, frames: np.ndarray | torch.Tensor) -> None:
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        self.frames[slots] = frames

    def gather(
        self, slots: np.ndarray, pad: np.ndarray | None, device: torch.device
    ) -> torch.Tensor:
        shape = (*slots.shape, *self.frame_shape)
        flat = slots.reshape(-1)
        if device.type == "cpu":
            out = np.take(self.frames, flat, axis=0).reshape(shape)
            if pad is not None:
                out[pad] = 0
            return torch.from_numpy(out)
        # Gather straight into pinned host memory, then one asynchronous host-to-device copy. The
        # caching host allocator does not hand this block out again until the copy has finished.
        pinned = torch.empty(shape, dtype=torch_dtype(self.dtype), pin_memory=True)
        out = pinned.numpy()
        # mode="clip": np.take only writes into `out` without an extra buffer for non-"raise"
        # modes; the indices are always in range.
        np.take(
            self.frames,
            flat,
            axis=0,
            out=out.reshape(flat.shape[0], *self.frame_shape),
            mode="clip",
        )
        if pad is not None:
            out[pad] = 0
        return pinned.to(device, non_blocking=True)

    def iter_chunks(self, ranges: list[tuple[int, int]]) -> Iterator[memoryview]:
        for lo, hi in ranges:
            raw = self.frames[lo:hi].reshape(-1).view(np.uint8).data
            for start in range(0, len(raw), CHUNK_BYTES):
                yield raw[start : start + CHUNK_BYTES]

    def load_chunks(
        self, read_chunk: Callable[[memoryview], None], ranges: list[tuple[int, int]]
    ) -> None:
        for lo, hi in ranges:
            raw = self.frames[lo:hi].reshape(-1).view(np.uint8).data
            for start in range(0, len(raw), CHUNK_BYTES):
                read_chunk(raw[start : start + CHUNK_BYTES])

    def clear(self) -> None:
        self.frames.fill(0)


class TorchFrameStore(FrameStore):
    def __init__(
        self, capacity: int, frame_shape: tuple[int, ...], dtype: np.dtype, device: torch.device
    ) -> None:
        self.capacity = capacity
        self.frame_shape = frame_shape
        self.dtype = np.dtype(dtype)
        self.device = device
        self.frames = torch.zeros(
            (capacity, *frame_shape), dtype=torch_dtype(self.dtype), device=device
        )

    @property
    def nbytes(self) -> int:
        return self.frames.numel() * self.frames.element_size()

    def _to_storage(self, arr: np.ndarray) -> torch.Tensor:
        """A small host array (indices, masks) as a tensor on the storage device."""
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.device.type == "cpu":
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def _index(self, slots: np.ndarray) -> torch.Tensor:
        return self._to_storage(np.asarray(slots, dtype=np.int64))

    def write(self, slots: np.ndarray, frames: np.ndarray | torch.Tensor) -> None:
        src = torch.as_tensor(frames)
        if self.device.type == "cuda" and src.device.type == "cpu":
            # Through pinned memory: a copy from pageable memory may wait for the device to
            # finish its queued work (the update); a pinned one is queued behind it.
            src = src.pin_memory()
        self.frames.index_copy_(0, self._index(slots), src.to(self.device, non_blocking=True))

    def gather(
        self, slots: np.ndarray, pad: np.ndarray | None, device: torch.device
    ) -> torch.Tensor:
        shape = (*slots.shape, *self.frame_shape)
        out = self.frames.index_select(0, self._index(slots.reshape(-1))).view(shape)
        if pad is not None:
            mask = self._to_storage(pad.reshape(-1))  # [K] bool on the storage device
            out = out.view(mask.shape[0], -1).masked_fill_(mask[:, None], 0).view(shape)
        return out.to(device, non_blocking=True)

    def _rows_per_chunk(self) -> int:
        return max(1, CHUNK_BYTES // max(1, self.row_bytes))

    def iter_chunks(self, ranges: list[tuple[int, int]]) -> Iterator[memoryview]:
        rows = self._rows_per_chunk()
        for lo, hi in ranges:
            for start in range(lo, hi, rows):
                stop = min(start + rows, hi)
                chunk = self.frames[start:stop].detach().cpu().contiguous().numpy()
                yield chunk.reshape(-1).view(np.uint8).data

    def load_chunks(
        self, read_chunk: Callable[[memoryview], None], ranges: list[tuple[int, int]]
    ) -> None:
        rows = self._rows_per_chunk()
        bounce = np.empty((rows, *self.frame_shape), dtype=self.dtype)  # one reused host buffer
        for lo, hi in ranges:
            for start in range(lo, hi, rows):
                n = min(rows, hi - start)
                part = bounce[:n]
                read_chunk(part.reshape(-1).view(np.uint8).data)
                self.frames[start : start + n].copy_(torch.from_numpy(part))

    def clear(self) -> None:
        self.frames.zero_()


def make_frame_store(
    capacity: int,
    frame_shape: tuple[int, ...],
    dtype: np.dtype,
    storage_device: torch.device,
    backend: str,
) -> FrameStore:
    """``backend``: ``"auto"`` (numpy for a CPU storage device, torch otherwise), ``"numpy"`` or
    ``"torch"``."""
    if backend == "auto":
        backend = "numpy" if storage_device.type == "cpu" else "torch"
    if backend == "numpy":
        if storage_device.type != "cpu":
            raise ValueError(
                f"storage_backend='numpy' keeps frames in host memory; got storage_device="
                f"{storage_device}. Use storage_backend='torch' (or 'auto') for device storage."
            )
        return NumpyFrameStore(capacity, frame_shape, dtype)
    if backend == "torch":
        return TorchFrameStore(capacity, frame_shape, dtype, storage_device)
    raise ValueError(f"storage_backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
