#include "llm/model.h"

#include <climits>

#include "common/error.h"
#include "common/log.h"
#include "llm/backend.h"

namespace vl {

namespace {

struct LoadCallbackData {
    const ProgressFn * on_progress;
    const AbortFlagPtr * abort;
};

bool load_progress(float progress, void * user_data) {
    auto * data = static_cast<LoadCallbackData *>(user_data);
    if (*data->abort && (*data->abort)->aborted()) return false;
    if (*data->on_progress) (*data->on_progress)(progress);
    return true;
}

} // namespace

std::shared_ptr<TextModel> TextModel::load(const ModelParams & params, const ProgressFn & on_progress, const AbortFlagPtr & abort) {
    backend_init();
    if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "model load aborted");

    LoadCallbackData cb{&on_progress, &abort};
    llama_model_params mp = llama_model_default_params();
    // One device, never llama.cpp's default of every GPU device: the same card can appear as CUDA0 and Vulkan0.
    DeviceChoice device = params.vocab_only ? DeviceChoice{} : choose_device(params.gpu, params.gpu_index);
    ggml_backend_dev_t devices[2] = {device.device, nullptr};
    mp.devices = devices;
    mp.n_gpu_layers = device.device ? params.gpu_layers : 0;
    mp.load_mode = params.use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
    mp.vocab_only = params.vocab_only;
    mp.progress_callback = load_progress;
    mp.progress_callback_user_data = &cb;

    LogCapture capture;
    llama_model * model = nullptr;
    try {
        model = llama_model_load_from_file(params.path.c_str(), mp);
    } catch (const std::exception & e) {
        throw Error(ErrorCode::ModelLoad, e.what());
    }
    if (!model) {
        if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "model load aborted");
        std::string reason = capture.summary();
        throw Error(ErrorCode::ModelLoad, reason.empty() ? "llama.cpp could not load the model" : reason);
    }
    return std::shared_ptr<TextModel>(new TextModel(model, std::move(device)));
}

TextModel::~TextModel() { llama_model_free(model_); }

std::vector<std::pair<std::string, std::string>> TextModel::metadata() const {
    std::vector<std::pair<std::string, std::string>> out;
    const int32_t n = llama_model_meta_count(model_);
    std::vector<char> key(256), val(4096);
    for (int32_t i = 0; i < n; i++) {
        int32_t kn = llama_model_meta_key_by_index(model_, i, key.data(), key.size());
        if (kn < 0) continue;
        if (static_cast<size_t>(kn) >= key.size()) {
            key.resize(kn + 1);
            llama_model_meta_key_by_index(model_, i, key.data(), key.size());
        }
        int32_t vn = llama_model_meta_val_str_by_index(model_, i, val.data(), val.size());
        if (vn < 0) continue;
        if (static_cast<size_t>(vn) >= val.size()) {
            val.resize(vn + 1);
            llama_model_meta_val_str_by_index(model_, i, val.data(), val.size());
        }
        out.emplace_back(std::string(key.data()), std::string(val.data(), vn));
    }
    return out;
}

std::vector<llama_token> TextModel::tokenize(const std::string & text, bool add_special, bool parse_special) const {
    if (text.size() > static_cast<size_t>(INT32_MAX)) throw Error(ErrorCode::InvalidArgument, "text is too long to tokenize");
    std::vector<llama_token> tokens(text.size() + 2);
    int32_t n = llama_tokenize(vocab(), text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                               static_cast<int32_t>(tokens.size()), add_special, parse_special);
    if (n == INT32_MIN) throw Error(ErrorCode::InvalidArgument, "tokenization overflow");
    if (n < 0) {
        tokens.resize(-n);
        n = llama_tokenize(vocab(), text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
        if (n < 0) throw Error(ErrorCode::Internal, "tokenization failed");
    }
    tokens.resize(n);
    return tokens;
}

void TextModel::check_token(llama_token token) const {
    if (token < 0 || token >= n_vocab()) {
        throw Error(ErrorCode::InvalidArgument, "token id " + std::to_string(token) + " is outside the vocabulary (0.." +
                                                    std::to_string(n_vocab() - 1) + ")");
    }
}

std::string TextModel::detokenize(const std::vector<llama_token> & tokens, bool render_special) const {
    for (llama_token t : tokens) check_token(t);
    std::string text(tokens.size() * 4 + 16, '\0');
    int32_t n = llama_detokenize(vocab(), tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                                 static_cast<int32_t>(text.size()), false, render_special);
    if (n < 0) {
        text.resize(-n);
        n = llama_detokenize(vocab(), tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), false, render_special);
        if (n < 0) throw Error(ErrorCode::Internal, "detokenization failed");
    }
    text.resize(n);
    return text;
}

std::string TextModel::token_piece(llama_token token, bool render_special) const {
    check_token(token);
    std::string piece(32, '\0');
    int32_t n = llama_token_to_piece(vocab(), token, piece.data(), static_cast<int32_t>(piece.size()), 0, render_special);
    if (n < 0) {
        piece.resize(-n);
        n = llama_token_to_piece(vocab(), token, piece.data(), static_cast<int32_t>(piece.size()), 0, render_special);
    }
    piece.resize(n < 0 ? 0 : n);
    return piece;
}

} // namespace vl
