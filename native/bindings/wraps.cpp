#include "bindings/wraps.h"

#include <cstdint>
#include <string>

#include "bindings/addon.h"
#include "bindings/vision-wrap.h"
#include "bindings/convert.h"
#include "bindings/worker.h"
#include "common/error.h"
#include "llm/state-file.h"

namespace vl {

// ---- AbortFlag ----------------------------------------------------------------------------------------------------

Napi::Function AbortWrap::Init(Napi::Env env) {
    return DefineClass(env, "AbortFlag", {InstanceMethod<&AbortWrap::Abort>("abort"), InstanceAccessor<&AbortWrap::Aborted>("aborted")});
}

AbortWrap::AbortWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<AbortWrap>(info), flag_(std::make_shared<AbortFlag>()) {}

Napi::Value AbortWrap::Abort(const Napi::CallbackInfo & info) {
    flag_->abort();
    return info.Env().Undefined();
}

Napi::Value AbortWrap::Aborted(const Napi::CallbackInfo & info) { return Napi::Boolean::New(info.Env(), flag_->aborted()); }

AbortFlagPtr AbortWrap::from(const Napi::CallbackInfo & info, size_t i) {
    if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
    Napi::Env env = info.Env();
    if (!info[i].IsObject() || !info[i].As<Napi::Object>().InstanceOf(Addon::of(env).abort_ctor.Value())) {
        throw Napi::TypeError::New(env, "abort must be an AbortFlag");
    }
    return Unwrap(info[i].As<Napi::Object>())->flag();
}

// ---- Model --------------------------------------------------------------------------------------------------------

Napi::Function ModelWrap::Init(Napi::Env env) {
    return DefineClass(env, "Model", {
        InstanceMethod<&ModelWrap::Info>("info"),
        InstanceMethod<&ModelWrap::Metadata>("metadata"),
        InstanceMethod<&ModelWrap::Tokenize>("tokenize"),
        InstanceMethod<&ModelWrap::Detokenize>("detokenize"),
        InstanceMethod<&ModelWrap::TokenPiece>("tokenPiece"),
        InstanceMethod<&ModelWrap::IsEog>("isEog"),
        InstanceMethod<&ModelWrap::SpecialTokens>("specialTokens"),
        InstanceMethod<&ModelWrap::CreateContext>("createContext"),
        InstanceMethod<&ModelWrap::Dispose>("dispose"),
    });
}

ModelWrap::ModelWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
        throw Napi::TypeError::New(info.Env(), "Model objects are created by loadModel()");
    }
    model_ = *info[0].As<Napi::External<TextModelPtr>>().Data();
}

Napi::Object ModelWrap::New(Napi::Env env, TextModelPtr model) {
    auto * holder = new TextModelPtr(std::move(model));
    auto ext = Napi::External<TextModelPtr>::New(env, holder, [](Napi::Env, TextModelPtr * p) { delete p; });
    return Addon::of(env).model_ctor.New({ext});
}

ModelWrap * ModelWrap::unwrap(Napi::Env env, const Napi::Value & v, const char * name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).model_ctor.Value())) {
        throw Napi::TypeError::New(env, std::string(name) + " must be a Model");
    }
    return Unwrap(v.As<Napi::Object>());
}

const TextModelPtr & ModelWrap::model(Napi::Env env) const {
    if (!model_) throw_js(env, "VL_DISPOSED", "the model was disposed");
    return model_;
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const TextModelPtr & m = model(env);
    llama_model * lm = m->get();
    const llama_vocab * vocab = m->vocab();
    Napi::Object o = Napi::Object::New(env);
    char desc[256];
    llama_model_desc(lm, desc, sizeof(desc));
    o.Set("description", desc);
    o.Set("device", device_object(env, m->device()));
    o.Set("parameters", Napi::Number::New(env, static_cast<double>(llama_model_n_params(lm))));
    o.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(llama_model_size(lm))));
    o.Set("trainContextSize", llama_model_n_ctx_train(lm));
    o.Set("embeddingSize", llama_model_n_embd(lm));
    o.Set("inputEmbeddingSize", llama_model_n_embd_inp(lm));
    o.Set("layers", llama_model_n_layer(lm));
    o.Set("heads", llama_model_n_head(lm));
    o.Set("kvHeads", llama_model_n_head_kv(lm));
    o.Set("vocabSize", llama_vocab_n_tokens(vocab));
    o.Set("bos", llama_vocab_bos(vocab));
    o.Set("eos", llama_vocab_eos(vocab));
    o.Set("eot", llama_vocab_eot(vocab));
    o.Set("addBos", llama_vocab_get_add_bos(vocab));
    o.Set("recurrent", llama_model_is_recurrent(lm) || llama_model_is_hybrid(lm));
    o.Set("canShift", llama_model_rope_type(lm) != LLAMA_ROPE_TYPE_MROPE && llama_model_rope_type(lm) != LLAMA_ROPE_TYPE_IMROPE &&
                          llama_model_rope_type(lm) != LLAMA_ROPE_TYPE_VISION);
    const char * tmpl = llama_model_chat_template(lm, nullptr);
    o.Set("chatTemplate", tmpl ? Napi::Value(Napi::String::New(env, tmpl)) : env.Null());
    return o;
}

Napi::Value ModelWrap::Metadata(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    for (const auto & kv : model(env)->metadata()) o.Set(kv.first, kv.second);
    return o;
}

Napi::Value ModelWrap::Tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string text = arg_string(info, 0, "text");
    bool add_special = arg_bool(info, 1, "addSpecial", false);
    bool parse_special = arg_bool(info, 2, "parseSpecial", false);
    return guard(env, [&] { return to_int32_array(env, model(env)->tokenize(text, add_special, parse_special)); });
}

Napi::Value ModelWrap::Detokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::vector<int32_t> tokens = arg_tokens(info, 0, "tokens");
    bool render_special = arg_bool(info, 1, "renderSpecial", false);
    return guard(env, [&] { return Napi::String::New(env, model(env)->detokenize(tokens, render_special)); });
}

Napi::Value ModelWrap::TokenPiece(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "token must be a number");
    int32_t token = info[0].As<Napi::Number>().Int32Value();
    bool render_special = arg_bool(info, 1, "renderSpecial", false);
    return guard(env, [&] {
        std::string piece = model(env)->token_piece(token, render_special);
        return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t *>(piece.data()), piece.size());
    });
}

Napi::Value ModelWrap::IsEog(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "token must be a number");
    int32_t token = info[0].As<Napi::Number>().Int32Value();
    return guard(env, [&] {
        model(env)->check_token(token);
        return Napi::Boolean::New(env, llama_vocab_is_eog(model(env)->vocab(), token));
    });
}

// Control and user-defined tokens (e.g. <|im_start|>, <image>): the strings a chat template may emit that must be
// tokenized as single special tokens.
Napi::Value ModelWrap::SpecialTokens(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const TextModelPtr & m = model(env);
    const llama_vocab * vocab = m->vocab();
    Napi::Array out = Napi::Array::New(env);
    uint32_t k = 0;
    const int32_t n = llama_vocab_n_tokens(vocab);
    for (int32_t id = 0; id < n; id++) {
        const auto attr = llama_vocab_get_attr(vocab, id);
        if (!(attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED))) continue;
        Napi::Object o = Napi::Object::New(env);
        o.Set("id", id);
        o.Set("text", llama_vocab_get_text(vocab, id));
        o.Set("control", (attr & LLAMA_TOKEN_ATTR_CONTROL) != 0);
        out.Set(k++, o);
    }
    return out;
}

Napi::Value ModelWrap::CreateContext(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    TextModelPtr m = model(env);
    Napi::Object o = arg_object(info, 0, "params");
    ContextParams p;
    p.n_ctx = static_cast<uint32_t>(opt_int(o, "contextSize", 4096, 1, 1LL << 31));
    p.n_batch = static_cast<uint32_t>(opt_int(o, "batchSize", 512, 1, 1 << 20));
    p.n_ubatch = static_cast<uint32_t>(opt_int(o, "microBatchSize", p.n_batch, 1, 1 << 20));
    p.n_threads = static_cast<int32_t>(opt_int(o, "threads", 0, 1, 1024));
    p.n_threads_batch = static_cast<int32_t>(opt_int(o, "batchThreads", 0, 0, 1024));
    p.flash_attn = static_cast<int32_t>(opt_int(o, "flashAttention", -1, -1, 1));
    p.f32_cache = opt_bool(o, "f32Cache", false);
    auto result = std::make_shared<std::shared_ptr<TextContext>>();
    return PromiseWorker::run(
        env, "vidllama.createContext", [m, p, result] { *result = std::make_shared<TextContext>(m, p); },
        [result](Napi::Env env) -> Napi::Value { return ContextWrap::New(env, *result); }, {info.This().As<Napi::Object>()});
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo & info) {
    model_.reset();
    return info.Env().Undefined();
}

// ---- Sampler ------------------------------------------------------------------------------------------------------

Napi::Function SamplerWrap::Init(Napi::Env env) {
    return DefineClass(env, "Sampler", {InstanceMethod<&SamplerWrap::Accept>("accept")});
}

SamplerWrap::SamplerWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<SamplerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) throw Napi::TypeError::New(env, "new Sampler(model, params)");
    model_ = ModelWrap::unwrap(env, info[0], "model")->model(env);
    Napi::Object o = arg_object(info, 1, "params");
    SamplerParams p;
    p.temperature = static_cast<float>(opt_number(o, "temperature", p.temperature, 0, 1e6));
    p.top_k = static_cast<int32_t>(opt_int(o, "topK", p.top_k, 0, 1 << 30));
    p.top_p = static_cast<float>(opt_number(o, "topP", p.top_p, 0, 1));
    p.min_p = static_cast<float>(opt_number(o, "minP", p.min_p, 0, 1));
    p.repeat_penalty = static_cast<float>(opt_number(o, "repeatPenalty", p.repeat_penalty, 1e-6, 1e6));
    p.frequency_penalty = static_cast<float>(opt_number(o, "frequencyPenalty", p.frequency_penalty, -1e6, 1e6));
    p.presence_penalty = static_cast<float>(opt_number(o, "presencePenalty", p.presence_penalty, -1e6, 1e6));
    p.penalty_last_n = static_cast<int32_t>(opt_int(o, "penaltyLastN", p.penalty_last_n, -1, 1 << 30));
    p.seed = static_cast<uint32_t>(opt_int(o, "seed", p.seed, 0, 0xFFFFFFFFLL));
    Napi::Value banned = o.Get("banned");
    if (!banned.IsUndefined() && !banned.IsNull()) {
        if (!banned.IsArray()) throw Napi::TypeError::New(env, "params.banned must be an array of token ids");
        Napi::Array list = banned.As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); i++) {
            Napi::Value t = list.Get(i);
            if (!t.IsNumber()) throw Napi::TypeError::New(env, "params.banned must be an array of token ids");
            p.banned.push_back(t.As<Napi::Number>().Int32Value());
        }
    }
    sampler_ = std::make_shared<Sampler>(model_->get(), p);
}

SamplerWrap * SamplerWrap::unwrap(Napi::Env env, const Napi::Value & v, const char * name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).sampler_ctor.Value())) {
        throw Napi::TypeError::New(env, std::string(name) + " must be a Sampler");
    }
    return Unwrap(v.As<Napi::Object>());
}

Napi::Value SamplerWrap::Accept(const Napi::CallbackInfo & info) {
    std::vector<int32_t> tokens = arg_tokens(info, 0, "tokens");
    return guard(info.Env(), [&] {
        for (int32_t t : tokens) model_->check_token(t);
        sampler_->accept(tokens);
        return info.Env().Undefined();
    });
}

// ---- Context ------------------------------------------------------------------------------------------------------

Napi::Function ContextWrap::Init(Napi::Env env) {
    return DefineClass(env, "Context", {
        InstanceMethod<&ContextWrap::Evaluate>("evaluate"),
        InstanceMethod<&ContextWrap::EvaluateEmbeddings>("evaluateEmbeddings"),
        InstanceMethod<&ContextWrap::Logits>("logits"),
        InstanceMethod<&ContextWrap::Truncate>("truncate"),
        InstanceMethod<&ContextWrap::Remove>("remove"),
        InstanceMethod<&ContextWrap::Shift>("shift"),
        InstanceMethod<&ContextWrap::SaveState>("saveState"),
        InstanceMethod<&ContextWrap::LoadState>("loadState"),
        InstanceMethod<&ContextWrap::Info>("info"),
        InstanceMethod<&ContextWrap::Dispose>("dispose"),
    });
}

ContextWrap::ContextWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ContextWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
        throw Napi::TypeError::New(info.Env(), "Context objects are created by Model.createContext()");
    }
    ctx_ = *info[0].As<Napi::External<std::shared_ptr<TextContext>>>().Data();
}

Napi::Object ContextWrap::New(Napi::Env env, std::shared_ptr<TextContext> ctx) {
    auto * holder = new std::shared_ptr<TextContext>(std::move(ctx));
    auto ext = Napi::External<std::shared_ptr<TextContext>>::New(env, holder, [](Napi::Env, std::shared_ptr<TextContext> * p) { delete p; });
    return Addon::of(env).context_ctor.New({ext});
}

std::shared_ptr<TextContext> ContextWrap::claim(Napi::Env env) {
    if (!ctx_) throw_js(env, "VL_DISPOSED", "the context was disposed");
    bool expected = false;
    if (!busy_->compare_exchange_strong(expected, true)) {
        throw_js(env, "VL_BUSY", "another operation is running on this context");
    }
    return ctx_;
}

namespace {

// Releases the busy flag when the work ends (on the worker thread), whatever happens.
struct BusyRelease {
    std::shared_ptr<std::atomic<bool>> busy;
    ~BusyRelease() { busy->store(false); }
};

Napi::Object decode_result(Napi::Env env, const DecodeResult & r, int32_t token, int32_t n_past) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("evaluated", r.evaluated);
    o.Set("aborted", r.aborted);
    o.Set("ms", r.ms);
    o.Set("token", token);
    o.Set("nPast", n_past);
    return o;
}

} // namespace

// evaluate(tokens: Int32Array, { logits?, sampler?, position? }, abort?) -> Promise<{ evaluated, aborted, ms, token, nPast }>
// With a sampler, samples the next token after the evaluation (token is -1 when aborted). Empty tokens with a sampler
// samples again from the current logits. `position` (default: the end of the cache) must be the end of the cache.
Napi::Value ContextWrap::Evaluate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::vector<int32_t> tokens = arg_tokens(info, 0, "tokens");
    Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    std::shared_ptr<Sampler> sampler;
    Napi::Value sampler_value = options.Get("sampler");
    std::vector<Napi::Object> keep{info.This().As<Napi::Object>()};
    if (!sampler_value.IsUndefined()) {
        sampler = SamplerWrap::unwrap(env, sampler_value, "sampler")->sampler();
        keep.push_back(sampler_value.As<Napi::Object>());
    }
    const bool want_logits = opt_bool(options, "logits", sampler != nullptr) || sampler != nullptr;
    const int32_t position = static_cast<int32_t>(opt_int(options, "position", -1, -1, INT32_MAX));
    AbortFlagPtr abort = AbortWrap::from(info, 2);
    auto ctx = claim(env);
    auto out = std::make_shared<std::pair<DecodeResult, int32_t>>(DecodeResult{}, -1);
    auto n_past = std::make_shared<int32_t>(0);
    auto busy = busy_;
    return PromiseWorker::run(
        env, "vidllama.evaluate",
        [ctx, tokens, position, want_logits, sampler, abort, out, n_past, busy] {
            BusyRelease release{busy};
            if (!tokens.empty()) out->first = ctx->decode_tokens(tokens, position, want_logits, abort);
            if (sampler && !out->first.aborted) out->second = ctx->sample(*sampler);
            *n_past = ctx->n_past();
        },
        [out, n_past](Napi::Env env) -> Napi::Value { return decode_result(env, out->first, out->second, *n_past); }, keep);
}

// evaluateEmbeddings(embd: Float32Array | Embeddings, { logits?, first?, count?, position? }, abort?)
//   -> Promise<{ evaluated, aborted, ms, nPast }>
// An Embeddings object (from Vision.encode) is read in place, rows [first, first + count); a Float32Array is copied.
Napi::Value ContextWrap::EvaluateEmbeddings(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    const bool want_logits = opt_bool(options, "logits", false);
    const int32_t position = static_cast<int32_t>(opt_int(options, "position", -1, -1, INT32_MAX));
    AbortFlagPtr abort = AbortWrap::from(info, 2);
    if (!ctx_) throw_js(env, "VL_DISPOSED", "the context was disposed");
    const int32_t n_embd = llama_model_n_embd_inp(ctx_->model()->get());
    std::shared_ptr<std::vector<float>> data;
    size_t first = 0, count = 0;
    if (info.Length() > 0 && info[0].IsObject() && info[0].As<Napi::Object>().InstanceOf(Addon::of(env).embeddings_ctor.Value())) {
        const EmbeddingsData & e = EmbeddingsWrap::Unwrap(info[0].As<Napi::Object>())->data();
        if (e.width != n_embd) {
            throw Napi::RangeError::New(env, "the embeddings are " + std::to_string(e.width) + " wide but the model takes " +
                                                 std::to_string(n_embd) + " (projector and text model do not match)");
        }
        const size_t n = e.values->size() / e.width;
        first = static_cast<size_t>(opt_int(options, "first", 0, 0, static_cast<int64_t>(n)));
        count = static_cast<size_t>(opt_int(options, "count", static_cast<int64_t>(n - first), 0, static_cast<int64_t>(n - first)));
        data = e.values;
    } else {
        if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
            throw Napi::TypeError::New(env, "embeddings must be a Float32Array or an Embeddings object");
        }
        Napi::Float32Array embd = info[0].As<Napi::Float32Array>();
        if (embd.ElementLength() % n_embd != 0) {
            throw Napi::RangeError::New(env, "embeddings length " + std::to_string(embd.ElementLength()) +
                                                 " is not a multiple of the model's input width " + std::to_string(n_embd));
        }
        // Copied: the JS buffer may be reused or collected while the worker runs.
        data = std::make_shared<std::vector<float>>(embd.Data(), embd.Data() + embd.ElementLength());
        count = data->size() / n_embd;
    }
    auto ctx = claim(env);
    auto out = std::make_shared<DecodeResult>();
    auto n_past = std::make_shared<int32_t>(0);
    auto busy = busy_;
    return PromiseWorker::run(
        env, "vidllama.evaluateEmbeddings",
        [ctx, data, first, count, n_embd, position, want_logits, abort, out, n_past, busy] {
            BusyRelease release{busy};
            *out = ctx->decode_embeddings(data->data() + first * n_embd, count, position, want_logits, abort);
            *n_past = ctx->n_past();
        },
        [out, n_past](Napi::Env env) -> Napi::Value { return decode_result(env, *out, -1, *n_past); }, {info.This().As<Napi::Object>()});
}

Napi::Value ContextWrap::Logits(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto ctx = claim(env);
    BusyRelease release{busy_};
    return guard(env, [&] {
        std::vector<float> logits = ctx->last_logits();
        Napi::Float32Array a = Napi::Float32Array::New(env, logits.size());
        std::copy(logits.begin(), logits.end(), a.Data());
        return a;
    });
}

Napi::Value ContextWrap::Truncate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "nKeep must be a number");
    int32_t n_keep = info[0].As<Napi::Number>().Int32Value();
    auto ctx = claim(env);
    BusyRelease release{busy_};
    return guard(env, [&] {
        ctx->truncate(n_keep);
        return Napi::Number::New(env, ctx->n_past());
    });
}

// remove(p0, p1) -> nPast: drops the cached tokens at positions [p0, p1) (p1 < 0: to the end).
Napi::Value ContextWrap::Remove(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "p0 and p1 must be numbers");
    const int32_t p0 = info[0].As<Napi::Number>().Int32Value();
    const int32_t p1 = info[1].As<Napi::Number>().Int32Value();
    auto ctx = claim(env);
    BusyRelease release{busy_};
    return guard(env, [&] {
        ctx->remove(p0, p1);
        return Napi::Number::New(env, ctx->n_past());
    });
}

// shift(p0, p1, delta) -> nPast: adds delta to the positions of the cached tokens in [p0, p1) (p1 < 0: to the end).
// The keys are re-rotated by libllama at the next evaluation (its K-shift), which then takes a little longer.
Napi::Value ContextWrap::Shift(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
        throw Napi::TypeError::New(env, "p0, p1 and delta must be numbers");
    }
    const int32_t p0 = info[0].As<Napi::Number>().Int32Value();
    const int32_t p1 = info[1].As<Napi::Number>().Int32Value();
    const int32_t delta = info[2].As<Napi::Number>().Int32Value();
    auto ctx = claim(env);
    BusyRelease release{busy_};
    return guard(env, [&] {
        ctx->shift(p0, p1, delta);
        return Napi::Number::New(env, ctx->n_past());
    });
}

// saveState(path, header: Buffer) -> Promise<number of bytes written>
Napi::Value ContextWrap::SaveState(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = arg_string(info, 0, "path");
    if (info.Length() < 2 || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "header must be a Buffer");
    Napi::Buffer<uint8_t> header_buf = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> header(header_buf.Data(), header_buf.Data() + header_buf.Length());
    auto ctx = claim(env);
    auto written = std::make_shared<uint64_t>(0);
    auto busy = busy_;
    return PromiseWorker::run(
        env, "vidllama.saveState",
        [ctx, path, header, written, busy] {
            BusyRelease release{busy};
            *written = state_file_save(*ctx, path, header);
        },
        [written](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(*written)); },
        {info.This().As<Napi::Object>()});
}

// loadState(path) -> Promise<nPast>
Napi::Value ContextWrap::LoadState(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = arg_string(info, 0, "path");
    auto ctx = claim(env);
    auto n_past = std::make_shared<int32_t>(0);
    auto busy = busy_;
    return PromiseWorker::run(
        env, "vidllama.loadState",
        [ctx, path, n_past, busy] {
            BusyRelease release{busy};
            state_file_load(*ctx, path);
            *n_past = ctx->n_past();
        },
        [n_past](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *n_past); }, {info.This().As<Napi::Object>()});
}

Napi::Value ContextWrap::Info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!ctx_) throw_js(env, "VL_DISPOSED", "the context was disposed");
    Napi::Object o = Napi::Object::New(env);
    o.Set("contextSize", ctx_->n_ctx());
    o.Set("batchSize", ctx_->n_batch());
    o.Set("nPast", busy_->load() ? -1 : ctx_->n_past());
    o.Set("canShift", ctx_->can_shift());
    o.Set("cacheBytesPerToken", static_cast<double>(ctx_->cache_bytes_per_token()));
    return o;
}

Napi::Value ContextWrap::Dispose(const Napi::CallbackInfo & info) {
    // Work already running holds its own reference; the context is freed when it finishes.
    ctx_.reset();
    return info.Env().Undefined();
}

} // namespace vl
