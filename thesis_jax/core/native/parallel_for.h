// ParallelFor over XLA:CPU's intra-op thread pool, for the project's FFI kernels (core/native.py).
//
// The items [0, count) are cut into chunks that the pool's threads and the calling thread take
// from a shared counter. The caller works too and then waits only for chunks already running, so
// the call never waits on a task that has not started (no deadlock when every pool thread is
// busy, e.g. running another custom call), and a task that starts late finds nothing to do.

#ifndef THESIS_JAX_CORE_NATIVE_PARALLEL_FOR_H_
#define THESIS_JAX_CORE_NATIVE_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace thesis_jax {

// Calls body(begin, end) on disjoint ranges covering [0, count), `chunks_per_thread` ranges per
// thread of the pool (more evens out uneven items).
inline void ParallelFor(xla::ffi::ThreadPool& pool, int64_t count,
                        const std::function<void(int64_t, int64_t)>& body,
                        int64_t chunks_per_thread = 4) {
  if (count <= 0) return;
  struct Work {
    const std::function<void(int64_t, int64_t)>* body;
    int64_t count, chunk, chunks;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    std::mutex mutex;
    std::condition_variable all_done;

    void RunAvailable() {
      for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
        (*body)(c * chunk, std::min(count, (c + 1) * chunk));
        if (done.fetch_add(1) + 1 == chunks) {
          std::lock_guard<std::mutex> lock(mutex);
          all_done.notify_all();
        }
      }
    }
  };
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  auto work = std::make_shared<Work>();
  work->body = &body;  // only dereferenced for chunks taken before all are done
  work->count = count;
  work->chunk = std::max<int64_t>(1, count / (chunks_per_thread * threads));
  work->chunks = (count + work->chunk - 1) / work->chunk;
  for (int64_t t = 1; t < std::min(threads, work->chunks); ++t) {
    pool.Schedule([work] { work->RunAvailable(); });
  }
  work->RunAvailable();
  std::unique_lock<std::mutex> lock(work->mutex);
  work->all_done.wait(lock, [&] { return work->done.load() == work->chunks; });
}

}  // namespace thesis_jax

#endif  // THESIS_JAX_CORE_NATIVE_PARALLEL_FOR_H_
