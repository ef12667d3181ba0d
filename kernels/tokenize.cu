// k-mer tokenisers. digits: 256-byte table mapping a base to its digit in the scheme's base
// order (A,C,G,T for plain; A,T,C,G for DNABERT and Nucleotide Transformer), 4 otherwise.
// ids: (n_rows, max_len) int32; mask: (n_rows, max_len) uint8, 1 where a token is not padding.

// Overlapping (or strided) k-mers, optionally framed by cls_id / sep_id (-1 = none).
// Slot layout per row: [cls] kmer_0 .. kmer_{body-1} [sep] pad...; body is the number of
// k-mers, truncated so that the frame fits in max_len. k-mer t covers bases
// t*stride .. t*stride+k-1; its id is first_id + code, or unk_id if it has a non-ACGT base.
// Grid: x covers max_len slots, y strides over rows.
extern "C" __global__ void kmer_token_ids(
    const unsigned char* __restrict__ data, const long long* __restrict__ offsets,
    const unsigned char* __restrict__ digits, const int k, const int stride,
    const int first_id, const int unk_id, const int cls_id, const int sep_id,
    const int pad_id, const long long n_rows, const int max_len, int* __restrict__ ids,
    unsigned char* __restrict__ mask) {
  __shared__ unsigned char s_digits[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) s_digits[i] = digits[i];
  __syncthreads();
  const int n_pre = cls_id >= 0 ? 1 : 0;
  const int n_suf = sep_id >= 0 ? 1 : 0;
  for (long long row = blockIdx.y; row < n_rows; row += gridDim.y) {
    const long long start = offsets[row];
    const long long length = offsets[row + 1] - start;
    const long long n_kmers = length >= k ? (length - k) / stride + 1 : 0;
    long long room = (long long)max_len - n_pre - n_suf;
    if (room < 0) room = 0;
    const long long body = n_kmers < room ? n_kmers : room;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < max_len;
         j += gridDim.x * blockDim.x) {
      const long long t = (long long)j - n_pre;
      int id;
      if (n_pre && j == 0) {
        id = cls_id;
      } else if (t < body) {
        const unsigned char* bases = data + start + t * stride;
        long long code = 0;
        int ok = 1;
        for (int i = 0; i < k; ++i) {
          const int d = s_digits[bases[i]];
          if (d > 3) { ok = 0; break; }
          code = (code << 2) | d;
        }
        id = ok ? first_id + (int)code : unk_id;
      } else if (n_suf && t == body) {
        id = sep_id;
      } else {
        id = pad_id;
      }
      ids[row * (long long)max_len + j] = id;
      mask[row * (long long)max_len + j] = id != pad_id ? 1 : 0;
    }
  }
}

// Nucleotide Transformer v2: cls_id, then each run of A/C/G/T split into non-overlapping k-mers
// (k = 6; ids first_id + code, A,T,C,G order) with the run's leftover bases as single-base
// tokens; a base outside a run (N, other letters) is a single token too. base_ids (int32, 256)
// is each byte's id as a single token (A/C/G/T, N, <unk> for any other letter), derived from
// the vocabulary in tokenizers.py. Sequential per record: one thread per row. n_tokens[row]
// receives the untruncated token count; with count_only == 0 ids/mask are written, truncated
// to max_len and padded with pad_id.
extern "C" __global__ void nt_tokenize(
    const unsigned char* __restrict__ data, const long long* __restrict__ offsets,
    const unsigned char* __restrict__ digits, const int* __restrict__ base_ids, const int k,
    const int cls_id, const int first_id, const int pad_id, const long long n_rows,
    const int max_len, const int count_only, long long* __restrict__ n_tokens,
    int* __restrict__ ids, unsigned char* __restrict__ mask) {
  for (long long row = blockIdx.x * (long long)blockDim.x + threadIdx.x; row < n_rows;
       row += (long long)gridDim.x * blockDim.x) {
    const long long start = offsets[row];
    const long long end = offsets[row + 1];
    int* row_ids = ids + row * (long long)max_len;
    long long slot = 0;
#define NT_EMIT(value)                                              \
  do {                                                              \
    if (!count_only && slot < max_len) row_ids[slot] = (value);     \
    ++slot;                                                         \
  } while (0)
    NT_EMIT(cls_id);
    long long i = start;
    while (i < end) {
      if (digits[data[i]] > 3) {
        NT_EMIT(base_ids[data[i]]);
        ++i;
        continue;
      }
      long long run_end = i;
      while (run_end < end && digits[data[run_end]] <= 3) ++run_end;
      const long long full = (run_end - i) / k;
      for (long long t = 0; t < full; ++t, ++slot) {
        if (count_only || slot >= max_len) continue;
        int code = 0;
        for (int b = 0; b < k; ++b) code = (code << 2) | digits[data[i + k * t + b]];
        row_ids[slot] = first_id + code;
      }
      for (long long b = i + k * full; b < run_end; ++b) NT_EMIT(base_ids[data[b]]);
      i = run_end;
    }
#undef NT_EMIT
    n_tokens[row] = slot;
    if (!count_only) {
      unsigned char* row_mask = mask + row * (long long)max_len;
      for (long long j = 0; j < max_len; ++j) {
        if (j >= slot) row_ids[j] = pad_id;
        row_mask[j] = j < slot ? 1 : 0;
      }
    }
  }
}
