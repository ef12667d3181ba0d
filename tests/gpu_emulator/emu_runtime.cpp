// Runtime of the CPU emulator of CUDA kernels (see tests/gpu_emulator/__init__.py).
//
// A launch runs the blocks of the grid one after another on the calling OS thread. The threads
// of a block are fibers (x86-64: a small assembly context switch; elsewhere: ucontext), each
// with its own 256 KiB stack above a guard page. A fiber runs until it reaches a
// synchronisation point (__syncthreads, a warp-synchronous intrinsic) or returns; when every
// live fiber waits, the scheduler releases the barriers that are complete and runs the fibers
// again. Nothing else interrupts a fiber, so only one CUDA thread runs at a time and atomics are
// plain read-modify-writes. EmuLaunch::reverse runs blocks and threads in reverse order, which
// the Python side uses for a second run whose results must be identical.
//
// Errors never abort the process: memory faults (SIGSEGV/SIGBUS, e.g. on the guard pages
// around every kernel argument), integer division by zero (SIGFPE: the GPU does not trap but
// the result is undefined), a barrier that can never complete, and __trap/assert end the launch
// and are reported through EmuResult. The SIGSEGV/SIGBUS/SIGFPE handlers and an alternate
// signal stack are installed only for the duration of a launch, then the previous ones (e.g.
// Python's faulthandler) are restored. One launch runs at a time (a process-wide mutex).

#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <mutex>
#include <string>
#include <vector>

#include "emu.h"

#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
#define EMU_ASM_SWITCH 1
#else
#define EMU_ASM_SWITCH 0
#endif

uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;

#if EMU_ASM_SWITCH
// emu_fiber_switch(save, load): pushes the callee-saved registers (System V x86-64) and the
// SSE/x87 control words on the current stack, stores the stack pointer in *save, then loads
// the one in `load` and pops the same frame from there. A new fiber's stack is laid out as such
// a frame whose return address is fiber_main.
extern "C" void emu_fiber_switch(void** save, void* load);
asm(R"(
    .pushsection .text
    .p2align 4
    .globl emu_fiber_switch
    .hidden emu_fiber_switch
    .type emu_fiber_switch, @function
emu_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_fiber_switch, .-emu_fiber_switch
    .popsection
)");
#endif

namespace emu {
namespace {

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr unsigned long long kPoison64 = 0xCDCDCDCDCDCDCDCDull;

enum class State : unsigned char { ready, block_wait, warp_wait, done };

struct Fiber {
#if EMU_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t context;
#endif
  char* stack = nullptr;  // lowest usable byte; the page below is PROT_NONE
  State state = State::ready;
  unsigned mask = 0;  // warp_wait: the lanes named by the intrinsic
};

struct Runtime {
  std::mutex mutex;
  std::vector<Fiber> fibers;
  Fiber scheduler;  // the launching thread's context
  unsigned n_threads = 0;
  unsigned current = 0;
  std::vector<unsigned long long> slots;  // values exchanged by the collective intrinsics
  Thunk thunk = nullptr;
  void** args = nullptr;
  int poison = 0;
  bool reverse = false;
  // shared memory
  std::vector<std::pair<void*, std::size_t>> shared_vars;  // declared in the current block
  unsigned long long static_shared = 0;
  char* dyn_region = nullptr;
  std::size_t dyn_region_bytes = 0;
  char* dyn_shared = nullptr;
  std::size_t dyn_bytes = 0;
  // outcome
  EmuResult* result = nullptr;
  bool failed = false;
  // signals
  volatile sig_atomic_t in_launch = 0;
  pthread_t owner{};
  sigjmp_buf jump;
  struct sigaction old_actions[3];
  stack_t old_alt_stack{};
  char* alt_stack = nullptr;
  int fault_signal = 0;
  int fault_code = 0;
};

Runtime R;
const int kSignals[3] = {SIGSEGV, SIGBUS, SIGFPE};

std::size_t page_bytes() {
  static const std::size_t page = (std::size_t)sysconf(_SC_PAGESIZE);
  return page;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::string format(const char* fmt, ...) {
  char buffer[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buffer, sizeof buffer, fmt, ap);
  va_end(ap);
  return buffer;
}

uint3 thread_index(unsigned t) {
  return {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
}

void set_message(const std::string& text) {
  std::snprintf(R.result->message, sizeof R.result->message, "%s", text.c_str());
}

void record_position() {
  const uint3 t = thread_index(R.current);
  R.result->thread[0] = t.x;
  R.result->thread[1] = t.y;
  R.result->thread[2] = t.z;
  R.result->block[0] = blockIdx.x;
  R.result->block[1] = blockIdx.y;
  R.result->block[2] = blockIdx.z;
}

// --- fibers ---------------------------------------------------------------------------------
[[noreturn]] void fiber_main();

void resume(Fiber& fiber) {
#if EMU_ASM_SWITCH
  emu_fiber_switch(&R.scheduler.sp, fiber.sp);
#else
  swapcontext(&R.scheduler.context, &fiber.context);
#endif
}

void suspend(Fiber& fiber) {
#if EMU_ASM_SWITCH
  emu_fiber_switch(&fiber.sp, R.scheduler.sp);
#else
  swapcontext(&fiber.context, &R.scheduler.context);
#endif
}

void init_fiber(Fiber& fiber) {
  fiber.state = State::ready;
  fiber.mask = 0;
#if EMU_ASM_SWITCH
  static const std::uintptr_t control_words = [] {
    unsigned mxcsr = 0;
    unsigned short fpucw = 0;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    return (std::uintptr_t)mxcsr | ((std::uintptr_t)fpucw << 32);
  }();
  auto* top = reinterpret_cast<std::uintptr_t*>(fiber.stack + kStackBytes);  // 16-aligned
  std::uintptr_t* sp = top - 9;  // control words, r15, r14, r13, r12, rbx, rbp, return, 0
  sp[0] = control_words;
  for (int i = 1; i <= 6; ++i) sp[i] = 0;
  sp[7] = reinterpret_cast<std::uintptr_t>(&fiber_main);
  sp[8] = 0;  // fiber_main's own (never used) return address keeps the ABI's alignment
  fiber.sp = sp;
#else
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = fiber.stack;
  fiber.context.uc_stack.ss_size = kStackBytes;
  fiber.context.uc_link = nullptr;
  makecontext(&fiber.context, fiber_main, 0);
#endif
}

void ensure_fibers(unsigned n) {
  while (R.fibers.size() < n) {
    const std::size_t page = page_bytes();
    void* base = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    mprotect(base, page, PROT_NONE);
    Fiber fiber;
    fiber.stack = static_cast<char*>(base) + page;
    R.fibers.push_back(fiber);
  }
}

[[noreturn]] void fiber_main() {
  R.thunk(R.args);
  Fiber& self = R.fibers[R.current];
  self.state = State::done;
  suspend(self);
  __builtin_unreachable();  // a finished fiber is re-initialised, never resumed
}

// Ends the launch from inside a fiber: the scheduler never resumes it.
[[noreturn]] void fail_in_fiber(int status, const std::string& message) {
  R.result->status = status;
  record_position();
  set_message(message);
  R.failed = true;
  suspend(R.fibers[R.current]);
  __builtin_unreachable();
}

void wait(State state, unsigned mask) {
  Fiber& self = R.fibers[R.current];
  self.state = state;
  self.mask = mask;
  suspend(self);
}

// --- barriers -------------------------------------------------------------------------------
unsigned live_lanes(unsigned warp_base) {
  unsigned live = 0;
  for (unsigned lane = 0; lane < 32 && warp_base + lane < R.n_threads; ++lane) {
    if (R.fibers[warp_base + lane].state != State::done) live |= 1u << lane;
  }
  return live;
}

// Releases every warp-barrier waiter whose named live lanes all wait at a warp barrier.
bool release_warps() {
  bool released = false;
  for (unsigned base = 0; base < R.n_threads; base += 32) {
    unsigned waiting = 0;
    for (unsigned lane = 0; lane < 32 && base + lane < R.n_threads; ++lane) {
      if (R.fibers[base + lane].state == State::warp_wait) waiting |= 1u << lane;
    }
    if (!waiting) continue;
    const unsigned live = live_lanes(base);
    unsigned release = 0;
    for (unsigned lane = 0; lane < 32; ++lane) {
      if (!(waiting >> lane & 1)) continue;
      const unsigned named = R.fibers[base + lane].mask & live;
      if ((named & ~waiting) == 0) release |= 1u << lane;
    }
    for (unsigned lane = 0; lane < 32; ++lane) {
      if (release >> lane & 1) R.fibers[base + lane].state = State::ready;
    }
    released |= release != 0;
  }
  return released;
}

std::string ranges(const std::vector<unsigned>& ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += ids[i] == ids[j] ? format("%u", ids[i]) : format("%u-%u", ids[i], ids[j]);
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

void report_deadlock() {
  std::vector<unsigned> at_block, done;
  std::vector<std::pair<unsigned, std::vector<unsigned>>> at_warp;  // by mask
  for (unsigned t = 0; t < R.n_threads; ++t) {
    const Fiber& fiber = R.fibers[t];
    if (fiber.state == State::block_wait) at_block.push_back(t);
    if (fiber.state == State::done) done.push_back(t);
    if (fiber.state != State::warp_wait) continue;
    auto group = at_warp.begin();
    while (group != at_warp.end() && group->first != fiber.mask) ++group;
    if (group == at_warp.end()) group = at_warp.insert(at_warp.end(), {fiber.mask, {}});
    group->second.push_back(t);
  }
  std::string warp;
  for (const auto& group : at_warp) {
    warp += format("%s%s (mask 0x%08x)", warp.empty() ? "" : ", ", ranges(group.second).c_str(),
                   group.first);
  }
  R.result->status = 3;
  R.result->block[0] = blockIdx.x;
  R.result->block[1] = blockIdx.y;
  R.result->block[2] = blockIdx.z;
  set_message(format(
      "barrier that can never complete (divergent __syncthreads or *_sync mask): linear thread "
      "ids waiting at __syncthreads: %s; at a warp-synchronous intrinsic: %s; exited: %s",
      ranges(at_block).c_str(), warp.empty() ? "none" : warp.c_str(), ranges(done).c_str()));
  R.failed = true;
}

// --- one block --------------------------------------------------------------------------------
bool run_block() {
  R.shared_vars.clear();
  if (R.dyn_bytes) std::memset(R.dyn_shared, R.poison, R.dyn_bytes);
  for (unsigned t = 0; t < R.n_threads; ++t) init_fiber(R.fibers[t]);
  for (;;) {
    for (unsigned i = 0; i < R.n_threads; ++i) {
      const unsigned t = R.reverse ? R.n_threads - 1 - i : i;
      Fiber& fiber = R.fibers[t];
      if (fiber.state != State::ready) continue;
      R.current = t;
      threadIdx = thread_index(t);
      resume(fiber);
      if (R.failed) return false;
    }
    unsigned live = 0, at_block = 0;
    for (unsigned t = 0; t < R.n_threads; ++t) {
      const State s = R.fibers[t].state;
      live += s != State::done;
      at_block += s == State::block_wait;
    }
    if (live == 0) return true;
    // Threads that already returned do not hold up __syncthreads (as on the hardware).
    if (at_block == live) {
      for (unsigned t = 0; t < R.n_threads; ++t) {
        if (R.fibers[t].state == State::block_wait) R.fibers[t].state = State::ready;
      }
      continue;
    }
    if (release_warps()) continue;
    report_deadlock();
    return false;
  }
}

// --- signals ----------------------------------------------------------------------------------
void on_signal(int sig, siginfo_t* info, void* context) {
  if (!R.in_launch || !pthread_equal(pthread_self(), R.owner)) {
    // Not ours (another thread): put the previous handler back; the fault happens again.
    for (int i = 0; i < 3; ++i) {
      if (kSignals[i] == sig) sigaction(sig, &R.old_actions[i], nullptr);
    }
    return;
  }
  R.fault_signal = sig;
  R.fault_code = info->si_code;
  R.result->fault_address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  R.result->fault_write = -1;
#if defined(__x86_64__) && defined(REG_ERR)
  if (sig == SIGSEGV) {
    const auto* uc = static_cast<const ucontext_t*>(context);
    R.result->fault_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
  }
#else
  (void)context;
#endif
  siglongjmp(R.jump, 1);
}

void install_signal_handlers() {
  if (!R.alt_stack) {
    R.alt_stack = static_cast<char*>(mmap(nullptr, 256 * 1024, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  stack_t ss{};
  ss.ss_sp = R.alt_stack;
  ss.ss_size = 256 * 1024;
  sigaltstack(&ss, &R.old_alt_stack);
  struct sigaction action {};
  action.sa_sigaction = on_signal;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &R.old_actions[i]);
}

void restore_signal_handlers() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &R.old_actions[i], nullptr);
  sigaltstack(&R.old_alt_stack, nullptr);
}

void describe_fault() {
  const std::uintptr_t address = R.result->fault_address;
  const std::size_t page = page_bytes();
  if (R.fault_signal == SIGFPE) {
    R.result->status = 2;
    set_message(R.fault_code == FPE_INTDIV
                    ? "integer division by zero (undefined on the GPU, which does not trap)"
                    : "arithmetic fault (SIGFPE), e.g. INT_MIN / -1");
    return;
  }
  R.result->status = 1;
  for (unsigned t = 0; t < R.fibers.size(); ++t) {
    const auto guard = reinterpret_cast<std::uintptr_t>(R.fibers[t].stack) - page;
    if (address >= guard && address < guard + page) {
      set_message(format("stack overflow: the thread's local variables exceed %zu KiB",
                         kStackBytes / 1024));
      return;
    }
  }
  const auto dyn_start = reinterpret_cast<std::uintptr_t>(R.dyn_shared);
  const auto dyn_guard =
      reinterpret_cast<std::uintptr_t>(R.dyn_region + R.dyn_region_bytes) - page;
  if (R.dyn_region && address >= dyn_guard && address < dyn_guard + page) {
    set_message(format("dynamic shared memory accessed at byte %llu of %zu (shared_mem): past "
                       "its end",
                       (unsigned long long)(address - dyn_start), R.dyn_bytes));
    return;
  }
  set_message(format("%s at address 0x%llx",
                     R.fault_signal == SIGBUS ? "SIGBUS" : "SIGSEGV",
                     (unsigned long long)address));
}

}  // namespace

// --- entry points used by emu.h ---------------------------------------------------------------
void block_barrier() { wait(State::block_wait, 0); }

unsigned lane_id() { return R.current & 31u; }

unsigned long long warp_exchange(unsigned mask, unsigned long long value, int src_lane) {
  const unsigned t = R.current;
  const unsigned lane = t & 31u;
  const unsigned base = t - lane;
  if (!(mask >> lane & 1)) {
    fail_in_fiber(3, format("lane %u called a *_sync intrinsic with mask 0x%08x, which does not "
                            "include it",
                            lane, mask));
  }
  R.slots[t] = value;
  wait(State::warp_wait, mask);
  unsigned long long out = value;
  if (src_lane >= 0) {
    const unsigned src = base + (unsigned)src_lane;
    const bool valid = src_lane < 32 && (mask >> src_lane & 1) && src < R.n_threads &&
                       R.fibers[src].state != State::done;
    out = valid ? R.slots[src] : kPoison64;
  }
  wait(State::warp_wait, mask);  // no lane overwrites its slot before every lane has read
  return out;
}

unsigned warp_ballot(unsigned mask, int predicate) {
  const unsigned t = R.current;
  const unsigned lane = t & 31u;
  const unsigned base = t - lane;
  if (!(mask >> lane & 1)) {
    fail_in_fiber(3, format("lane %u called __ballot_sync/__any_sync/__all_sync with mask "
                            "0x%08x, which does not include it",
                            lane, mask));
  }
  R.slots[t] = predicate != 0;
  wait(State::warp_wait, mask);
  unsigned bits = 0;
  for (unsigned l = 0; l < 32 && base + l < R.n_threads; ++l) {
    if ((mask >> l & 1) && R.fibers[base + l].state != State::done && R.slots[base + l]) {
      bits |= 1u << l;
    }
  }
  wait(State::warp_wait, mask);
  return bits;
}

int block_reduce(int predicate, int op) {
  R.slots[R.current] = predicate != 0;
  block_barrier();
  int count = 0, live = 0;
  for (unsigned t = 0; t < R.n_threads; ++t) {
    if (R.fibers[t].state == State::done) continue;
    ++live;
    count += (int)R.slots[t];
  }
  block_barrier();
  return op == 0 ? count : op == 1 ? (count == live) : (count != 0);
}

void* dynamic_shared() { return R.dyn_shared; }

void shared_declared(void* address, std::size_t bytes) {
  for (const auto& var : R.shared_vars) {
    if (var.first == address) return;
  }
  std::memset(address, R.poison, bytes);  // the first thread of the block to declare it
  R.shared_vars.emplace_back(address, bytes);
  unsigned long long total = 0;
  for (const auto& var : R.shared_vars) total += var.second;
  if (total > R.static_shared) R.static_shared = total;
}

void trap(const char* what, const char* file, int line) {
  fail_in_fiber(4, *file ? format("%s failed at %s:%d", what, file, line) : std::string(what));
}

int launch(const EmuLaunch* config, void** args, EmuResult* result, Thunk thunk) {
  std::lock_guard<std::mutex> lock(R.mutex);
  std::memset(result, 0, sizeof *result);
  R.result = result;
  const unsigned n = config->block[0] * config->block[1] * config->block[2];
  if (n == 0 || n > 1024 || config->grid[0] == 0 || config->grid[1] == 0 ||
      config->grid[2] == 0) {
    result->status = 5;
    set_message("invalid launch configuration");
    return result->status;
  }
  gridDim = dim3(config->grid[0], config->grid[1], config->grid[2]);
  blockDim = dim3(config->block[0], config->block[1], config->block[2]);
  ensure_fibers(n);
  R.n_threads = n;
  R.slots.assign(n, 0);
  R.thunk = thunk;
  R.args = args;
  R.poison = config->poison & 0xFF;
  R.reverse = config->reverse != 0;
  R.static_shared = 0;
  R.failed = false;
  // Dynamic shared memory ends on a PROT_NONE page, so overruns fault (exactly, when its size
  // is a multiple of 16: the start is 16-byte aligned, as on the GPU).
  const std::size_t page = page_bytes();
  R.dyn_bytes = config->dynamic_shared;
  const std::size_t body = round_up(R.dyn_bytes, page);
  R.dyn_region_bytes = body + page;
  R.dyn_region = static_cast<char*>(mmap(nullptr, R.dyn_region_bytes, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (R.dyn_region == MAP_FAILED) {
    R.dyn_region = nullptr;
    result->status = 5;
    set_message("cannot allocate dynamic shared memory");
    return result->status;
  }
  mprotect(R.dyn_region + body, page, PROT_NONE);
  R.dyn_shared = R.dyn_region + body - round_up(R.dyn_bytes, 16);

  R.owner = pthread_self();
  install_signal_handlers();
  R.in_launch = 1;
  if (sigsetjmp(R.jump, 1) == 0) {
    const unsigned gx = gridDim.x, gy = gridDim.y, gz = gridDim.z;
    const unsigned long long blocks = (unsigned long long)gx * gy * gz;
    for (unsigned long long b = 0; b < blocks; ++b) {
      const unsigned long long i = R.reverse ? blocks - 1 - b : b;
      blockIdx = {(unsigned)(i % gx), (unsigned)(i / gx % gy), (unsigned)(i / gx / gy)};
      if (!run_block()) break;
    }
  } else {
    record_position();
    describe_fault();
  }
  R.in_launch = 0;
  restore_signal_handlers();
  munmap(R.dyn_region, R.dyn_region_bytes);
  R.dyn_region = nullptr;
  result->static_shared = R.static_shared;
  return result->status;
}

}  // namespace emu

// --- entry points for Python (cupy/_emulator.py) ----------------------------------------------
// Kernel arguments live in their own mappings with a PROT_NONE page on each side; the data
// touches the upper guard (at_end != 0) or starts right after the lower one.
EMU_EXPORT void* emu_guarded_alloc(unsigned long long nbytes, int at_end,
                                   unsigned long long* region, unsigned long long* region_bytes) {
  const std::size_t page = emu::page_bytes();
  const std::size_t body = emu::round_up(nbytes ? nbytes : 1, page);
  void* base = mmap(nullptr, body + 2 * page, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  char* bytes = static_cast<char*>(base);
  mprotect(bytes, page, PROT_NONE);
  mprotect(bytes + page + body, page, PROT_NONE);
  *region = reinterpret_cast<std::uintptr_t>(base);
  *region_bytes = body + 2 * page;
  return bytes + page + (at_end ? body - nbytes : 0);
}

// Makes the data pages of a guarded region read-only (const kernel arguments) or writable.
EMU_EXPORT int emu_guarded_protect(unsigned long long region, unsigned long long region_bytes,
                                   int read_only) {
  const std::size_t page = emu::page_bytes();
  return mprotect(reinterpret_cast<char*>(region) + page, region_bytes - 2 * page,
                  read_only ? PROT_READ : PROT_READ | PROT_WRITE);
}

EMU_EXPORT void emu_guarded_free(unsigned long long region, unsigned long long region_bytes) {
  munmap(reinterpret_cast<void*>(region), region_bytes);
}

EMU_EXPORT const char* emu_runtime_info() {
  return EMU_ASM_SWITCH ? "fibers: x86-64 assembly context switch, 256 KiB stacks"
                        : "fibers: ucontext, 256 KiB stacks";
}
