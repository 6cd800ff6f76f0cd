// A libllama context with one sequence: the KV cache a Session or a Stream fills.
//
// Not thread-safe by itself: the bindings serialise operations (one at a time per context). The context keeps its
// model alive. Positions are 1-D (as Qwen2/VideoLLaMA3 use) and contiguous: new tokens and embeddings go at an
// explicit position that must be n_past() (libllama refuses anything else for 1-D RoPE models; checking it here
// turns a caller's bookkeeping error into a clear exception). remove() drops a range, shift() moves the positions of
// a range (the keys are re-rotated lazily by libllama at the next decode), truncate() drops the tail. What occupies
// which position is recorded by the caller (lib/kv/timeline.ts), which is the only writer of these operations.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/abort.h"
#include "llm/model.h"
#include "sample/sampler.h"

namespace vl {

struct ContextParams {
    uint32_t n_ctx = 4096;
    uint32_t n_batch = 512;
    uint32_t n_ubatch = 512;
    int32_t n_threads = 0;       // required, > 0 (the default is lib/cpu.ts's rule)
    int32_t n_threads_batch = 0; // 0: same as n_threads
    int32_t flash_attn = -1;     // -1 auto, 0 off, 1 on
    bool f32_cache = false;      // K and V cache in f32 instead of f16 (exact eviction checks, more memory)
};

struct DecodeResult {
    int32_t evaluated = 0; // tokens now in the cache (all of them unless aborted)
    bool aborted = false;
    double ms = 0;
};

class TextContext {
  public:
    TextContext(TextModelPtr model, const ContextParams & params); // throws ContextCreate
    ~TextContext();
    TextContext(const TextContext &) = delete;
    TextContext & operator=(const TextContext &) = delete;

    llama_context * get() const { return ctx_; }
    const TextModelPtr & model() const { return model_; }
    uint32_t n_ctx() const { return llama_n_ctx(ctx_); }
    uint32_t n_batch() const { return llama_n_batch(ctx_); }
    int32_t n_past() const;
    // Whether positions of cached tokens can be shifted (false for M-RoPE and recurrent models).
    bool can_shift() const;
    // Bytes one cached token occupies (K and V of every layer); libllama allocates n_ctx() of them up front.
    size_t cache_bytes_per_token() const;

    // Evaluates tokens at positions position, position+1, ... in batches of n_batch; `position` must be n_past()
    // (-1: n_past()). Stops between batches, and inside one through ggml's abort callback, when `abort` is set; the
    // cache then holds exactly the first `evaluated` tokens. Logits are kept for the last token only when `want_logits`.
    DecodeResult decode_tokens(const std::vector<llama_token> & tokens, int32_t position, bool want_logits, const AbortFlagPtr & abort);
    // Evaluates precomputed input embeddings (n_tokens rows of n_embd floats), same contract as decode_tokens.
    DecodeResult decode_embeddings(const float * embd, size_t n_tokens, int32_t position, bool want_logits, const AbortFlagPtr & abort);

    // Samples from the logits of the last evaluated token; throws when the last decode did not keep logits.
    llama_token sample(Sampler & sampler);
    std::vector<float> last_logits() const;

    // Keeps the first n_keep positions, drops the rest.
    void truncate(int32_t n_keep);
    // Drops the cached tokens at positions [p0, p1) (p1 < 0: to the end). Leaves a gap unless the range is the tail.
    void remove(int32_t p0, int32_t p1);
    // Adds `delta` to the positions of the cached tokens in [p0, p1) (p1 < 0: to the end). Throws InvalidArgument
    // when the model cannot shift, or when the result would overlap tokens kept before p0 or go below 0.
    void shift(int32_t p0, int32_t p1, int32_t delta);

    std::vector<uint8_t> state_get() const;
    void state_set(const std::vector<uint8_t> & data);

  private:
    static bool abort_callback(void * data);
    DecodeResult decode(const llama_token * tokens, const float * embd, size_t n, bool want_logits, const AbortFlagPtr & abort);
    void check_position(int32_t position) const;

    TextModelPtr model_;
    bool f32_cache_ = false;
    // Persistent CPU thread pools (generation, prompt batches), attached to ctx_ and freed after it: without them
    // ggml makes a new pool for every llama_decode, which costs a fifth of the speed of one-token decodes on 2 cores.
    ggml_threadpool * threadpool_ = nullptr;
    ggml_threadpool * threadpool_batch_ = nullptr;
    llama_context * ctx_ = nullptr;
    llama_batch batch_tokens_{};
    AbortFlagPtr current_abort_;
    bool logits_valid_ = false; // the last decode completed with logits for its last token
};

} // namespace vl
