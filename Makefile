# Set-up and checks. `make example` and `make test` each start from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NVCC   ?= nvcc
ARCH   ?= sm_90

.PHONY: example test lint kernels pytest emulate docs clean

$(BIN)/gpu-genomics: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## The main job on the bundled example (offline): 4 BED files + a small bgzip reference ->
## example.h5 (one-hot regions, labels, coords); then the sequence encoders on a FASTA, the
## single-cell recipe on a 10x folder, a VCF to dosage, and a bulk expression table.
example: $(BIN)/gpu-genomics
	$(BIN)/gpu-genomics info
	$(BIN)/gpu-genomics intervals -i data/metadata.txt -f data/reference.fa.gz -o example.h5
	$(BIN)/python -c "import h5py; f = h5py.File('example.h5'); print({k: (f[k].shape, str(f[k].dtype)) for k in f})"
	$(BIN)/gpu-genomics encode examples/sequences.fa.gz -o example-onehot.h5 --length 1000 --pad center
	$(BIN)/gpu-genomics encode examples/sequences.fa.gz -o example-kmers.zarr --encoding kmer-counts -k 6
	$(BIN)/gpu-genomics scrna data/scrna/filtered_feature_bc_matrix -o example-scrna.h5ad --rank-encode example-rank.parquet
	$(BIN)/gpu-genomics vcf data/vcf/example.vcf.gz -o example-vcf.zarr --min-maf 0.01 --standardize
	$(BIN)/gpu-genomics bulk data/bulk/example_expression.tsv -o example-bulk.h5

## ruff, nvcc on every kernel, pytest, then the `gpu` tests on the emulated GPU.
test: lint kernels pytest emulate

lint: $(BIN)/gpu-genomics
	$(BIN)/ruff check gpu_genomics tests bench
	$(BIN)/ruff format --check gpu_genomics tests bench

kernels:
	@if ! command -v $(NVCC) >/dev/null; then \
	  if [ -n "$$CI" ]; then echo "nvcc not found (CI needs it)"; exit 1; fi; \
	  echo "nvcc not found: kernels/*.cu not compiled here (CI compiles them)"; exit 0; \
	fi; \
	for f in kernels/*.cu; do \
	  echo "nvcc -arch=$(ARCH) -cubin $$f"; \
	  $(NVCC) -arch=$(ARCH) -cubin -o /dev/null $$f || exit 1; \
	done

## Two pytest-xdist worker processes (each test file's tests shared between them): on CI's
## two cores the suite takes about two thirds of the time of one process.
pytest: $(BIN)/gpu-genomics
	$(BIN)/python -m pytest -q -n 2

## The `gpu` tests without a GPU: kernels/*.cu compiled by g++ (C++20) into a CPU emulator behind
## a stand-in CuPy (tests/gpu_emulator); on a machine with a GPU, `make pytest` runs them for real.
emulate: $(BIN)/gpu-genomics
	GPU_GENOMICS_EMULATE_GPU=1 $(BIN)/python -m pytest -q -m gpu

## docs/outputs.md from the output specs declared beside each job (a test checks it is current).
docs: $(BIN)/gpu-genomics
	$(BIN)/python -c "from gpu_genomics.io.spec import all_specs, outputs_markdown; \
	print(outputs_markdown(all_specs()), end='')" > docs/outputs.md

clean:
	rm -rf $(VENV) example.h5 example-onehot.h5 example-kmers.zarr example-scrna.h5ad \
	  example-rank.parquet example-vcf.zarr example-bulk.h5 .pytest_cache
