// A cancellation flag shared between the JS thread (which sets it when an AbortSignal fires or an object is
// disposed) and the worker thread doing the long operation (which polls it between batches and from ggml's abort
// callback). Shared ownership: the worker may outlive the JS object that created the flag.
#pragma once

#include <atomic>
#include <memory>

namespace vl {

class AbortFlag {
  public:
    void abort() { aborted_.store(true, std::memory_order_relaxed); }
    bool aborted() const { return aborted_.load(std::memory_order_relaxed); }

  private:
    std::atomic<bool> aborted_{false};
};

using AbortFlagPtr = std::shared_ptr<AbortFlag>;

// True when any of the flags is set; null flags are ignored.
inline bool any_aborted(const AbortFlagPtr & a, const AbortFlagPtr & b = nullptr) {
    return (a && a->aborted()) || (b && b->aborted());
}

} // namespace vl
