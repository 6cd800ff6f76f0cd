#include "llm/context.h"

#include <chrono>
#include <cstring>

#include "common/error.h"
#include "ggml-backend.h"
#include "ggml-cpu.h" // types only: the functions live in the CPU module
#include "common/log.h"
#include "llm/backend.h"

namespace vl {

namespace {

// The CPU backend's thread-pool functions, looked up in the loaded CPU module (as llama-bench does through the
// registry): the module's functions cannot be linked.
using ThreadpoolNewFn = ggml_threadpool * (*)(ggml_threadpool_params *);
using ThreadpoolFreeFn = void (*)(ggml_threadpool *);

ThreadpoolNewFn threadpool_new_fn() { return reinterpret_cast<ThreadpoolNewFn>(cpu_proc_address("ggml_threadpool_new")); }

ThreadpoolFreeFn threadpool_free_fn() { return reinterpret_cast<ThreadpoolFreeFn>(cpu_proc_address("ggml_threadpool_free")); }

} // namespace

TextContext::TextContext(TextModelPtr model, const ContextParams & p) : model_(std::move(model)), f32_cache_(p.f32_cache) {
    if (p.n_ctx == 0) throw Error(ErrorCode::InvalidArgument, "context size must be positive");
    if (p.n_batch == 0 || p.n_ubatch == 0) throw Error(ErrorCode::InvalidArgument, "batch sizes must be positive");
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = p.n_ctx;
    cp.n_batch = p.n_batch;
    cp.n_ubatch = std::min(p.n_ubatch, p.n_batch);
    cp.n_seq_max = 1;
    // The default thread count is the caller's rule (lib/cpu.ts: physical cores), not guessed here.
    if (p.n_threads <= 0) throw Error(ErrorCode::InvalidArgument, "threads must be a positive count");
    cp.n_threads = p.n_threads;
    cp.n_threads_batch = p.n_threads_batch > 0 ? p.n_threads_batch : cp.n_threads;
    cp.flash_attn_type = p.flash_attn < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO
                         : p.flash_attn == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                             : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    if (p.f32_cache) {
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
    }
    cp.abort_callback = abort_callback;
    cp.abort_callback_data = this;
    cp.no_perf = true;

    LogCapture capture;
    try {
        ctx_ = llama_init_from_model(model_->get(), cp);
    } catch (const std::exception & e) {
        throw Error(ErrorCode::ContextCreate, e.what());
    }
    if (!ctx_) {
        std::string reason = capture.summary();
        throw Error(ErrorCode::ContextCreate, reason.empty() ? "llama.cpp could not create the context" : reason);
    }
    batch_tokens_ = llama_batch_init(static_cast<int32_t>(llama_n_batch(ctx_)), 0, 1);

    // Persistent thread pools for the CPU part of the graphs. A pool whose creation fails is simply not used (ggml then
    // makes one per graph, as before).
    if (ThreadpoolNewFn make = threadpool_new_fn()) {
        ggml_threadpool_params tp = ggml_threadpool_params_default(cp.n_threads);
        threadpool_ = make(&tp);
        if (cp.n_threads_batch != cp.n_threads) {
            ggml_threadpool_params tpb = ggml_threadpool_params_default(cp.n_threads_batch);
            threadpool_batch_ = make(&tpb);
        }
        if (threadpool_) llama_attach_threadpool(ctx_, threadpool_, threadpool_batch_ ? threadpool_batch_ : threadpool_);
    }
}

TextContext::~TextContext() {
    llama_batch_free(batch_tokens_);
    llama_free(ctx_);
    if (ThreadpoolFreeFn free_pool = threadpool_free_fn()) {
        if (threadpool_batch_) free_pool(threadpool_batch_);
        if (threadpool_) free_pool(threadpool_);
    }
}

bool TextContext::abort_callback(void * data) {
    auto * self = static_cast<TextContext *>(data);
    return self->current_abort_ && self->current_abort_->aborted();
}

int32_t TextContext::n_past() const { return llama_memory_seq_pos_max(llama_get_memory(ctx_), 0) + 1; }

bool TextContext::can_shift() const { return llama_memory_can_shift(llama_get_memory(ctx_)); }

size_t TextContext::cache_bytes_per_token() const {
    // Per token: K and V of every layer (head_dim × kv heads each), at the cache's element size.
    const llama_model * m = model_->get();
    const int64_t n_layer = llama_model_n_layer(m);
    const int64_t n_head = llama_model_n_head(m);
    const int64_t n_head_kv = llama_model_n_head_kv(m);
    const int64_t head_dim = n_head > 0 ? llama_model_n_embd(m) / n_head : 0;
    const int64_t element = f32_cache_ ? 4 : 2;
    return static_cast<size_t>(2 * n_layer * n_head_kv * head_dim * element);
}

void TextContext::check_position(int32_t position) const {
    const int32_t expected = n_past();
    if (position >= 0 && position != expected) {
        throw Error(ErrorCode::InvalidArgument, "position " + std::to_string(position) + " does not continue the cache, which ends at " +
                                                    std::to_string(expected) + " (positions must stay contiguous)");
    }
}

DecodeResult TextContext::decode_tokens(const std::vector<llama_token> & tokens, int32_t position, bool want_logits, const AbortFlagPtr & abort) {
    for (llama_token t : tokens) model_->check_token(t);
    check_position(position);
    return decode(tokens.data(), nullptr, tokens.size(), want_logits, abort);
}

DecodeResult TextContext::decode_embeddings(const float * embd, size_t n_tokens, int32_t position, bool want_logits, const AbortFlagPtr & abort) {
    check_position(position);
    return decode(nullptr, embd, n_tokens, want_logits, abort);
}

DecodeResult TextContext::decode(const llama_token * tokens, const float * embd, size_t n, bool want_logits, const AbortFlagPtr & abort) {
    const auto started = std::chrono::steady_clock::now();
    DecodeResult result;
    const int32_t start = n_past();
    logits_valid_ = false;
    if (static_cast<uint64_t>(start) + n > n_ctx()) {
        throw Error(ErrorCode::ContextFull, "the context holds " + std::to_string(start) + " of " + std::to_string(n_ctx()) +
                                                " tokens; " + std::to_string(n) + " more do not fit");
    }
    const int32_t n_batch = static_cast<int32_t>(llama_n_batch(ctx_));
    const int32_t n_embd = llama_model_n_embd_inp(model_->get());
    llama_batch embd_batch{};
    if (embd) embd_batch = llama_batch_init(n_batch, n_embd, 1);
    struct BatchGuard {
        llama_batch & b;
        bool owned;
        ~BatchGuard() { if (owned) llama_batch_free(b); }
    } guard{embd_batch, embd != nullptr};

    current_abort_ = abort;
    struct ResetAbort {
        AbortFlagPtr & ref;
        ~ResetAbort() { ref.reset(); }
    } reset_abort{current_abort_};

    LogCapture capture;
    size_t done = 0;
    while (done < n) {
        if (abort && abort->aborted()) {
            result.aborted = true;
            break;
        }
        const int32_t count = static_cast<int32_t>(std::min<size_t>(n - done, n_batch));
        llama_batch & batch = embd ? embd_batch : batch_tokens_;
        batch.n_tokens = count;
        for (int32_t i = 0; i < count; i++) {
            if (tokens) batch.token[i] = tokens[done + i];
            batch.pos[i] = start + static_cast<int32_t>(done) + i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = (want_logits && done + i == n - 1) ? 1 : 0;
        }
        if (embd) std::memcpy(batch.embd, embd + done * n_embd, sizeof(float) * static_cast<size_t>(count) * n_embd);
        const int32_t rc = llama_decode(ctx_, batch);
        if (rc == 2) {
            // Aborted inside the batch: ubatches already processed stay in the cache; drop them so the cache holds
            // whole batches only.
            llama_memory_seq_rm(llama_get_memory(ctx_), 0, start + static_cast<int32_t>(done), -1);
            result.aborted = true;
            break;
        }
        if (rc != 0) {
            llama_memory_seq_rm(llama_get_memory(ctx_), 0, start + static_cast<int32_t>(done), -1);
            std::string reason = capture.summary();
            if (rc == 1) throw Error(ErrorCode::ContextFull, "no room left in the KV cache" + (reason.empty() ? "" : ": " + reason));
            throw Error(ErrorCode::Decode, "llama_decode failed with " + std::to_string(rc) + (reason.empty() ? "" : ": " + reason));
        }
        done += count;
    }
    result.evaluated = static_cast<int32_t>(done);
    logits_valid_ = want_logits && !result.aborted && n > 0;
    result.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    return result;
}

llama_token TextContext::sample(Sampler & sampler) {
    if (!logits_valid_) throw Error(ErrorCode::InvalidArgument, "no logits to sample from: evaluate tokens with logits first");
    return sampler.sample(ctx_, -1);
}

std::vector<float> TextContext::last_logits() const {
    if (!logits_valid_) throw Error(ErrorCode::InvalidArgument, "no logits: the last evaluation did not keep them");
    const float * logits = llama_get_logits_ith(ctx_, -1);
    if (!logits) throw Error(ErrorCode::InvalidArgument, "no logits: nothing was evaluated with logits requested");
    const int32_t n_vocab = model_->n_vocab();
    return std::vector<float>(logits, logits + n_vocab);
}

void TextContext::truncate(int32_t n_keep) {
    if (n_keep < 0) throw Error(ErrorCode::InvalidArgument, "n_keep must be >= 0");
    if (n_keep >= n_past()) return;
    logits_valid_ = false;
    if (!llama_memory_seq_rm(llama_get_memory(ctx_), 0, n_keep, -1)) {
        throw Error(ErrorCode::Internal, "this model's memory cannot drop a partial sequence");
    }
}

void TextContext::remove(int32_t p0, int32_t p1) {
    const int32_t end = n_past();
    if (p0 < 0 || (p1 >= 0 && p1 < p0)) {
        throw Error(ErrorCode::InvalidArgument, "invalid range [" + std::to_string(p0) + ", " + std::to_string(p1) + ")");
    }
    if (p0 >= end || p0 == p1) return;
    logits_valid_ = false;
    if (!llama_memory_seq_rm(llama_get_memory(ctx_), 0, p0, p1)) {
        throw Error(ErrorCode::InvalidArgument, "this model's memory cannot drop a part of the sequence");
    }
}

void TextContext::shift(int32_t p0, int32_t p1, int32_t delta) {
    if (delta == 0) return;
    if (p0 < 0 || (p1 >= 0 && p1 < p0)) {
        throw Error(ErrorCode::InvalidArgument, "invalid range [" + std::to_string(p0) + ", " + std::to_string(p1) + ")");
    }
    // llama_memory_seq_add asserts (aborts the process) on memories that cannot shift: refuse first.
    if (!can_shift()) throw Error(ErrorCode::InvalidArgument, "this model's KV cache cannot shift positions (M-RoPE or recurrent memory)");
    llama_memory_t mem = llama_get_memory(ctx_);
    if (p0 + delta < 0) throw Error(ErrorCode::InvalidArgument, "shifting would move positions below 0");
    // The caller (the KV timeline) removes [p0 + delta, p0) first when delta < 0; libllama has no query for
    // whether a range is empty, so overlap is the caller's contract.
    logits_valid_ = false;
    llama_memory_seq_add(mem, 0, p0, p1, delta);
}

std::vector<uint8_t> TextContext::state_get() const {
    std::vector<uint8_t> data(llama_state_seq_get_size(ctx_, 0));
    const size_t n = llama_state_seq_get_data(ctx_, data.data(), data.size(), 0);
    if (n == 0 && !data.empty()) throw Error(ErrorCode::Internal, "could not read the context state");
    data.resize(n);
    return data;
}

void TextContext::state_set(const std::vector<uint8_t> & data) {
    logits_valid_ = false;
    llama_memory_clear(llama_get_memory(ctx_), true);
    LogCapture capture;
    if (llama_state_seq_set_data(ctx_, data.data(), data.size(), 0) == 0) {
        llama_memory_clear(llama_get_memory(ctx_), true);
        std::string reason = capture.summary();
        throw Error(ErrorCode::StateMismatch, "the saved state does not fit this model and context" + (reason.empty() ? "" : ": " + reason));
    }
}

} // namespace vl
