// A text model loaded by libllama (the LLM half of a VLM, or a plain chat model).
//
// Owns the llama_model. Contexts hold a shared_ptr to it, so a model stays alive while any context uses it even if
// JavaScript disposed the model first. All methods except load() are cheap and thread-safe (libllama's vocabulary and
// metadata functions are read-only).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/abort.h"
#include "llama.h"
#include "llm/backend.h"

namespace vl {

struct ModelParams {
    std::string path;
    std::string gpu = "auto"; // choose_device() (llm/backend.h): where the offloaded layers go
    int gpu_index = 0;
    int32_t gpu_layers = -1; // layers on that device; -1: all (ignored on the CPU)
    bool use_mmap = true;
    bool vocab_only = false;
};

using ProgressFn = std::function<void(float)>;

class TextModel {
  public:
    // Throws vl::Error(ModelLoad) with llama.cpp's reason, or vl::Error(Aborted).
    static std::shared_ptr<TextModel> load(const ModelParams & params, const ProgressFn & on_progress, const AbortFlagPtr & abort);
    ~TextModel();
    TextModel(const TextModel &) = delete;
    TextModel & operator=(const TextModel &) = delete;

    llama_model * get() const { return model_; }
    const DeviceChoice & device() const { return device_; }
    const llama_vocab * vocab() const { return llama_model_get_vocab(model_); }
    int32_t n_vocab() const { return llama_vocab_n_tokens(vocab()); }

    std::vector<std::pair<std::string, std::string>> metadata() const;

    // Text -> tokens. parse_special=false treats "<|im_end|>" typed by a user as plain text.
    std::vector<llama_token> tokenize(const std::string & text, bool add_special, bool parse_special) const;
    std::string detokenize(const std::vector<llama_token> & tokens, bool render_special) const;
    // The raw bytes of one token (may be a partial UTF-8 sequence).
    std::string token_piece(llama_token token, bool render_special) const;
    void check_token(llama_token token) const; // throws InvalidArgument when out of range

  private:
    TextModel(llama_model * model, DeviceChoice device) : model_(model), device_(std::move(device)) {}
    llama_model * model_;
    DeviceChoice device_;
};

using TextModelPtr = std::shared_ptr<TextModel>;

} // namespace vl
