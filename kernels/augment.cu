// The batch loader's augmentation (gpu_genomics/data/augment.py): gather, crop, and
// reverse-complement rows in one pass.
//
// src holds rows of in_width positions x channels elements of item_bytes bytes each (any dtype,
// copied as bytes, so the result is bit-identical to the CPU twin). Output row i takes source
// row rows[i], positions starts[i] .. starts[i] + out_width - 1; when flips[i] is non-zero it
// is reversed along the positions and its channels permuted (out channel c = source channel
// perm[c], the complement's channel for one-hot DNA; the identity for profiles):
//
//   out[i, j, c] = src[rows[i], starts[i] + (flip ? out_width - 1 - j : j), flip ? perm[c] : c]
//
// rows int64 (n_rows), starts int32 (n_rows, each in [0, in_width - out_width]), flips uint8
// (n_rows), perm int32 (channels). Each thread copies one element (item_bytes bytes): a warp
// reads and writes consecutive bytes of a row (reversed order for flipped rows). Grid: x covers
// a row's out_width * channels elements, y strides over rows.

extern "C" __global__ void augment_rows(
    const unsigned char* __restrict__ src, const long long* __restrict__ rows,
    const int* __restrict__ starts, const unsigned char* __restrict__ flips,
    const int* __restrict__ perm, const long long n_rows, const int in_width,
    const int out_width, const int channels, const int item_bytes,
    unsigned char* __restrict__ out) {
  const long long row_items = (long long)out_width * channels;
  const long long position_bytes = (long long)channels * item_bytes;
  const long long in_row_bytes = (long long)in_width * position_bytes;
  for (long long i = blockIdx.y; i < n_rows; i += gridDim.y) {
    const bool flip = flips[i] != 0;
    const unsigned char* in_row = src + rows[i] * in_row_bytes + starts[i] * position_bytes;
    unsigned char* out_row = out + i * row_items * item_bytes;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < row_items;
         e += (long long)gridDim.x * blockDim.x) {
      const long long j = e / channels;
      const int c = (int)(e - j * channels);
      const long long q = flip ? out_width - 1 - j : j;
      const int p = flip ? perm[c] : c;
      const unsigned char* from = in_row + q * position_bytes + (long long)p * item_bytes;
      unsigned char* to = out_row + e * item_bytes;
      for (int k = 0; k < item_bytes; ++k) to[k] = from[k];
    }
  }
}
