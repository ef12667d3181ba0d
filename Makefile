# Set-up and checks. `make example` and `make test` each start from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NVCC   ?= nvcc
ARCH   ?= sm_90

.PHONY: example test lint kernels pytest clean

$(BIN)/gpu-genomics: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## Encode the bundled example FASTA into one-hot HDF5 (offline) and show what was written.
example: $(BIN)/gpu-genomics
	$(BIN)/gpu-genomics info
	$(BIN)/gpu-genomics encode examples/sequences.fa.gz -o example.h5 --length 1000 --pad center
	$(BIN)/gpu-genomics encode examples/sequences.fa.gz -o example-kmers.zarr --encoding kmer-counts -k 6
	$(BIN)/python -c "import h5py; f = h5py.File('example.h5'); print({k: (f[k].shape, str(f[k].dtype)) for k in f})"

## ruff, nvcc on every kernel, then pytest.
test: lint kernels pytest

lint: $(BIN)/gpu-genomics
	$(BIN)/ruff check gpu_genomics tests bench
	$(BIN)/ruff format --check gpu_genomics tests bench

kernels:
	@for f in kernels/*.cu; do \
	  echo "nvcc -arch=$(ARCH) -cubin $$f"; \
	  $(NVCC) -arch=$(ARCH) -cubin -o /dev/null $$f || exit 1; \
	done

pytest: $(BIN)/gpu-genomics
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) example.h5 example-kmers.zarr .pytest_cache
