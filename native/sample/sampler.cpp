#include "sample/sampler.h"

#include <cmath>

namespace vl {

Sampler::Sampler(const llama_model * model, const SamplerParams & p) {
    chain_ = llama_sampler_chain_init(llama_sampler_chain_default_params());
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    if (!p.banned.empty()) {
        std::vector<llama_logit_bias> bias;
        bias.reserve(p.banned.size());
        for (llama_token t : p.banned) {
            if (t >= 0 && t < n_vocab) bias.push_back({t, -INFINITY});
        }
        if (!bias.empty()) llama_sampler_chain_add(chain_, llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(bias.size()), bias.data()));
    }
    if (p.penalty_last_n != 0 && (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f)) {
        llama_sampler_chain_add(chain_, llama_sampler_init_penalties(n_vocab, p.penalty_last_n, p.repeat_penalty,
                                                                    p.frequency_penalty, p.presence_penalty));
    }
    if (p.temperature <= 0.0f) {
        llama_sampler_chain_add(chain_, llama_sampler_init_greedy());
        return;
    }
    if (p.top_k > 0) llama_sampler_chain_add(chain_, llama_sampler_init_top_k(p.top_k));
    if (p.top_p < 1.0f) llama_sampler_chain_add(chain_, llama_sampler_init_top_p(p.top_p, 1));
    if (p.min_p > 0.0f) llama_sampler_chain_add(chain_, llama_sampler_init_min_p(p.min_p, 1));
    llama_sampler_chain_add(chain_, llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain_, llama_sampler_init_dist(p.seed));
}

Sampler::~Sampler() { llama_sampler_free(chain_); }

void Sampler::accept(const std::vector<llama_token> & tokens) {
    for (llama_token t : tokens) llama_sampler_accept(chain_, t);
}

llama_token Sampler::sample(llama_context * ctx, int32_t idx) { return llama_sampler_sample(chain_, ctx, idx); }

} // namespace vl
