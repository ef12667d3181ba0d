"""``cupy.cuda.driver`` for the GPU emulator: the error type of a missing kernel."""


class CUDADriverError(RuntimeError):
    """Raised where the CUDA driver would fail (e.g. ``CUDA_ERROR_NOT_FOUND``)."""
