"""pytest hooks active while the GPU emulator is (see ``tests/gpu_emulator/__init__.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


class EmulatorPlugin:
    """Names the build in the header, fails tests whose kernel errors were swallowed, and
    reports how many kernels ran."""

    def __init__(self, build_dir: Path):
        self.build_dir = build_dir

    def pytest_report_header(self, config: Any) -> list[str]:
        from cupy import _emulator

        return [
            f"gpu: emulated on the CPU ({_emulator.RUNTIME_INFO}); kernels from "
            f"{_emulator.MANIFEST['kernel_dir']}, built in {self.build_dir}"
        ]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        from cupy import _emulator

        seen = len(_emulator.problems)
        result = yield
        missed = _emulator.problems[seen:]
        if missed:
            raise _emulator.EmulatorError(
                "a kernel launch failed under the GPU emulator but the error was caught: "
                + " | ".join(missed)
            )
        return result

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from cupy import _emulator

        stats = _emulator.stats
        terminalreporter.write_line(
            f"gpu emulator: {stats['launches']} kernel launches, {stats['blocks']} blocks, "
            "each run twice (forward and reverse order) with identical results"
            if not _emulator.problems
            else f"gpu emulator: {len(_emulator.problems)} kernel launch(es) failed"
        )
