// A libllama context with one sequence: the KV cache a Session fills.
//
// Not thread-safe by itself: the bindings serialise operations (one at a time per context). The context keeps its
// model alive. Positions are implicit: tokens and embeddings are always appended at n_past() (1-D positions, as
// Qwen2/VideoLLaMA3 use), and truncate() drops the tail.
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
    int32_t n_threads = 0;       // 0: all available cores
    int32_t n_threads_batch = 0; // 0: same as n_threads
    int32_t flash_attn = -1;     // -1 auto, 0 off, 1 on
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

    // Appends tokens in batches of n_batch. Stops between batches, and inside one through ggml's abort callback,
    // when `abort` is set; the cache then holds exactly the first `evaluated` tokens. Logits are kept for the last
    // token only when `want_logits`.
    DecodeResult decode_tokens(const std::vector<llama_token> & tokens, bool want_logits, const AbortFlagPtr & abort);
    // Appends precomputed input embeddings (n_tokens rows of n_embd floats), same contract as decode_tokens.
    DecodeResult decode_embeddings(const float * embd, size_t n_tokens, bool want_logits, const AbortFlagPtr & abort);

    // Samples from the logits of the last evaluated token; throws when the last decode did not keep logits.
    llama_token sample(Sampler & sampler);
    std::vector<float> last_logits() const;

    // Keeps the first n_keep positions, drops the rest.
    void truncate(int32_t n_keep);

    std::vector<uint8_t> state_get() const;
    void state_set(const std::vector<uint8_t> & data);

  private:
    static bool abort_callback(void * data);
    DecodeResult decode(const llama_token * tokens, const float * embd, size_t n, bool want_logits, const AbortFlagPtr & abort);

    TextModelPtr model_;
    llama_context * ctx_ = nullptr;
    llama_batch batch_tokens_{};
    AbortFlagPtr current_abort_;
    bool logits_valid_ = false; // the last decode completed with logits for its last token
};

} // namespace vl
