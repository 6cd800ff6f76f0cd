// Token sampling: a llama_sampler chain built from plain parameters.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "llama.h"

namespace vl {

struct SamplerParams {
    float temperature = 0.8f;     // <= 0: greedy (argmax)
    int32_t top_k = 40;           // <= 0: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    int32_t penalty_last_n = 64;  // how many recent tokens the penalties look at
    uint32_t seed = LLAMA_DEFAULT_SEED;
    // Tokens that are never sampled (a family's placeholder ids): their logits become -inf before anything else.
    std::vector<llama_token> banned;
};

class Sampler {
  public:
    Sampler(const llama_model * model, const SamplerParams & params);
    ~Sampler();
    Sampler(const Sampler &) = delete;
    Sampler & operator=(const Sampler &) = delete;

    // Lets the repetition penalties see tokens that were not sampled here (the prompt, earlier turns).
    void accept(const std::vector<llama_token> & tokens);
    // Samples from the logits of output `idx` of the last decode and records the token.
    llama_token sample(llama_context * ctx, int32_t idx = -1);

  private:
    llama_sampler * chain_;
};

} // namespace vl
