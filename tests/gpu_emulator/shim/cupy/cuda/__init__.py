"""``cupy.cuda`` for the GPU emulator: one device (id 0) and the runtime calls the package makes."""

from __future__ import annotations

from typing import Any

from . import driver, runtime

__all__ = ["Device", "driver", "get_device_id", "is_available", "runtime"]


class Device:
    """The emulated device; only id 0 exists."""

    def __init__(self, device: Any = None):
        index = 0 if device is None else int(device)
        if index != 0:
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        self.id = index

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __int__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id} (emulated)>"

    def use(self) -> None:
        return None

    def synchronize(self) -> None:
        return None

    @property
    def compute_capability(self) -> str:
        props = runtime.getDeviceProperties(self.id)
        return f"{props['major']}{props['minor']}"


def get_device_id() -> int:
    return 0


def is_available() -> bool:
    return True
