// Vision tower bindings: loadVision(), Vision.encode() and the Embeddings it returns, FrameState for DiffFP across
// calls, and the pipeline's stages as separate calls: Vision.preprocess() (resize, normalize, patchify into Patches
// objects), Vision.prune() (DiffFP of one frame) and Vision.encodePatches() (encoder and projector). encode() runs the
// same three stage functions in one worker task; preprocessing and encoding run on the worker, pruning (~1 ms a
// frame) on the calling thread.
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings/convert.h"
#include "bindings/progress.h"
#include "bindings/registry.h"
#include "bindings/vision-wrap.h"
#include "bindings/worker.h"
#include "bindings/wraps.h"
#include "common/error.h"
#include "encode/vision-encoder.h"
#include "preprocess/crop.h"
#include "preprocess/patchify.h"
#include "preprocess/resize.h"
#include "prune/frame-diff.h"

namespace vl {

struct VisionState {
    VisionModelPtr model;
    std::unique_ptr<VisionEncoder> encoder;
    std::atomic<bool> busy{false};
};

namespace {

// One image or frame as received from JS (pixels copied: the worker must not read JS memory).
struct PendingImage {
    std::vector<uint8_t> rgb;
    int width = 0, height = 0, target_w = 0, target_h = 0, merge = 1;
    bool has_crop = false;
    CropRect crop; // of the resized picture (zeros outside it)
    VisionTowerId tower = VisionTowerId::Image;
};

struct PruneParams {
    float threshold = 0.1f;
    int min_tokens = 1;
};

// An item of encode(): an image, and for a video frame the DiffFP settings.
struct PendingItem {
    PendingImage image;
    bool prune = false;
    PruneParams prune_params;
};

// One item of the encoder stage. keep_all false: only the merged tokens in `keep` (ascending) are projected.
struct EncodeInput {
    PreparedPatchesPtr patches;
    VisionTowerId tower = VisionTowerId::Image;
    bool keep_all = true;
    std::vector<int32_t> keep;
};

int32_t get_int(const Napi::Object & o, const char * key, const std::string & where, int32_t min, int32_t max) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), where + "." + key + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<int64_t>(d) || d < min || d > max) {
        throw Napi::RangeError::New(o.Env(), where + "." + key + " must be an integer between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return static_cast<int32_t>(d);
}

// tower: "image" (default) or "video". VideoLLaMA3 has one tower and takes either; Video-LLaVA needs the tower in the
// file.
VisionTowerId read_tower(Napi::Env env, const Napi::Object & o, const VisionModel & model, const std::string & where, VisionTowerId fallback) {
    Napi::Value v = o.Get("tower");
    if (v.IsUndefined()) return fallback;
    const std::string name = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (name != "image" && name != "video") throw Napi::TypeError::New(env, where + ".tower must be \"image\" or \"video\"");
    const VisionTowerId tower = name == "video" ? VisionTowerId::Video : VisionTowerId::Image;
    if (model.hparams().is_clip() && tower == VisionTowerId::Video && !model.hparams().has_video_tower) {
        throw Napi::RangeError::New(env, where + ".tower is \"video\" but this projector (" + model.path() + ") has no video tower");
    }
    return tower;
}

// items[i] of encode() or preprocess(): { rgb: Uint8Array, width, height, targetWidth, targetHeight, merge,
// crop?: { left, top, width, height }, tower? }. The crop is a window of the resized picture that may reach outside
// it (those pixels are 0, as transformers' center_crop pads a too-small picture); the encoded size (the crop's, else
// the target's) must be a multiple of patch size × merge, and for CLIP the towers' image_size.
PendingImage read_image(Napi::Env env, const Napi::Object & o, const VisionModel & model, const std::string & where) {
    const VisionHparams & hp = model.hparams();
    PendingImage it;
    it.width = get_int(o, "width", where, 1, 1 << 20);
    it.height = get_int(o, "height", where, 1, 1 << 20);
    it.merge = get_int(o, "merge", where, 1, 8);
    const int32_t align = hp.patch_size * it.merge;
    Napi::Value crop = o.Get("crop");
    it.has_crop = !crop.IsUndefined() && !crop.IsNull();
    // With a crop only the crop is resampled (resize_rgb_bicubic_window), so the virtual resized size may be far
    // larger than any picture held in memory: a shortest-edge resize of a 1 × 100,000 strip is 224 × 22,400,000.
    const int32_t max_target = it.has_crop ? (1 << 30) : (1 << 20);
    it.target_w = get_int(o, "targetWidth", where, it.has_crop ? 1 : align, max_target);
    it.target_h = get_int(o, "targetHeight", where, it.has_crop ? 1 : align, max_target);
    int32_t encoded_w = it.target_w, encoded_h = it.target_h;
    if (it.has_crop) {
        if (!crop.IsObject()) throw Napi::TypeError::New(env, where + ".crop must be an object { left, top, width, height }");
        const Napi::Object c = crop.As<Napi::Object>();
        const std::string cw = where + ".crop";
        // A centred window of a target up to 2^30 wide starts up to 2^29 in; negative: it reaches before the picture.
        it.crop.left = get_int(c, "left", cw, -(1 << 30), 1 << 30);
        it.crop.top = get_int(c, "top", cw, -(1 << 30), 1 << 30);
        it.crop.width = get_int(c, "width", cw, align, 1 << 20);
        it.crop.height = get_int(c, "height", cw, align, 1 << 20);
        encoded_w = it.crop.width;
        encoded_h = it.crop.height;
        if (encoded_w % align || encoded_h % align) {
            throw Napi::RangeError::New(env, where + ": crop size must be a multiple of patch size × merge (" + std::to_string(align) + ")");
        }
    } else if (it.target_w % align || it.target_h % align) {
        throw Napi::RangeError::New(env, where + ": target size must be a multiple of patch size × merge (" + std::to_string(align) + ")");
    }
    if (hp.is_clip() && (it.merge != 1 || encoded_w != hp.image_size || encoded_h != hp.image_size)) {
        throw Napi::RangeError::New(env, where + ": this projector's CLIP towers encode " + std::to_string(hp.image_size) + "x" + std::to_string(hp.image_size) +
                                             " pixels of merge 1 (resize, then crop), got " + std::to_string(encoded_w) + "x" + std::to_string(encoded_h) +
                                             " of merge " + std::to_string(it.merge));
    }
    it.tower = read_tower(env, o, model, where, VisionTowerId::Image);
    Napi::Value rgb = o.Get("rgb");
    if (!rgb.IsTypedArray() || rgb.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw Napi::TypeError::New(env, where + ".rgb must be a Uint8Array");
    }
    Napi::Uint8Array bytes = rgb.As<Napi::Uint8Array>();
    if (bytes.ByteLength() != static_cast<size_t>(it.width) * it.height * 3) {
        throw Napi::RangeError::New(env, where + ".rgb must hold width × height × 3 bytes");
    }
    it.rgb.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
    return it;
}

// { threshold?, minTokens? }; what is left out takes the projector's own setting.
PruneParams read_prune_params(const Napi::Object & o, const VisionHparams & hp) {
    PruneParams p;
    p.threshold = static_cast<float>(opt_number(o, "threshold", hp.diff_threshold, 0, 1e9));
    p.min_tokens = static_cast<int>(opt_int(o, "minTokens", hp.min_tokens_per_frame, 0, 1 << 30));
    return p;
}

Napi::Array arg_array(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an array");
    return info[i].As<Napi::Array>();
}

// An optional options object: undefined/null give an empty one.
Napi::Object opt_object(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
    if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an object");
    return info[i].As<Napi::Object>();
}

FrameStateWrap * frame_state_arg(Napi::Env env, const Napi::Value & v, const char * name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).frame_state_ctor.Value())) {
        throw Napi::TypeError::New(env, std::string(name) + " must be a FrameState");
    }
    return FrameStateWrap::Unwrap(v.As<Napi::Object>());
}

EncoderReuseWrap * encoder_reuse_arg(Napi::Env env, const Napi::Value & v, const char * name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).encoder_reuse_ctor.Value())) {
        throw Napi::TypeError::New(env, std::string(name) + " must be an EncoderReuse");
    }
    return EncoderReuseWrap::Unwrap(v.As<Napi::Object>());
}

// ---- the stages (worker-safe: no napi) ----------------------------------------------------------------------------

// Stage 1: Pillow-exact bicubic resize to the target size, the crop (if any), normalize and patchify. Frees the source
// pixels: a batch of video frames must not hold both.
PreparedPatchesPtr preprocess_image(PendingImage & image, const VisionHparams & hp) {
    PatchifyParams pp;
    pp.patch_size = hp.patch_size;
    pp.merge_size = image.merge;
    pp.mean = hp.mean;
    pp.std = hp.std;
    pp.rescale = hp.rescale;
    const uint8_t * pixels = image.rgb.data();
    int width = image.target_w, height = image.target_h;
    std::vector<uint8_t> resized;
    const bool resample = image.target_w != image.width || image.target_h != image.height;
    if (image.has_crop) {
        // Only the window is computed: bit for bit the window of the whole resized picture (resize.h), zeros where
        // it reaches outside, as transformers' center_crop pads. Without a resample it is a plain cut.
        if (resample) {
            const ResizeWindow window{image.crop.left, image.crop.top, image.crop.width, image.crop.height};
            resized = resize_rgb_bicubic_window(image.rgb.data(), image.width, image.height, image.target_w, image.target_h, window);
        } else {
            resized = crop_rgb(image.rgb.data(), image.width, image.height, image.crop);
        }
        pixels = resized.data();
        width = image.crop.width;
        height = image.crop.height;
    } else if (resample) {
        resized = resize_rgb_bicubic(image.rgb.data(), image.width, image.height, image.target_w, image.target_h);
        pixels = resized.data();
    }
    auto out = std::make_shared<PreparedPatches>();
    out->patches = patchify_rgb(pixels, width, height, pp);
    out->merge = image.merge;
    out->tower = image.tower;
    std::vector<uint8_t>().swap(image.rgb);
    return out;
}

// Two frames are compared only when their rows line up value for value: the same grid, merge and row size. Any other
// previous frame counts as none (as after a resolution change), and reading past the shorter one is impossible.
bool same_layout(const PreparedPatches & a, const PreparedPatches & b) {
    return a.patches.grid_h == b.patches.grid_h && a.patches.grid_w == b.patches.grid_w && a.merge == b.merge &&
           a.patches.row_size == b.patches.row_size;
}

// Stage 2: DiffFP of `frame` against `last` (null or another layout: a first frame, all kept), then `frame` becomes
// `last`. The caller guards `last` (FrameState::mutex).
FrameDiffResult prune_frame(PreparedPatchesPtr & last, const PreparedPatchesPtr & frame, const PruneParams & params) {
    const Patches & p = frame->patches;
    const float * previous = last && same_layout(*last, *frame) ? last->patches.values.data() : nullptr;
    FrameDiffResult diff = frame_diff_keep(previous, p.values.data(), p.grid_h, p.grid_w, frame->merge, p.row_size, params.threshold, params.min_tokens);
    last = frame;
    return diff;
}

// A keep list that drops nothing encodes as keep-all: the same graph as an unpruned item, so the same bits.
void set_keep(EncodeInput & input, std::vector<int32_t> keep) {
    input.keep_all = static_cast<int32_t>(keep.size()) == input.patches->tokens();
    input.keep = input.keep_all ? std::vector<int32_t>{} : std::move(keep);
}

// The encoder's view of an input (its patches stay owned by the input).
VisionItem vision_item(const EncodeInput & input) {
    const PreparedPatches & prepared = *input.patches;
    VisionItem v;
    v.patches = prepared.patches.values.data();
    v.grid_h = prepared.patches.grid_h;
    v.grid_w = prepared.patches.grid_w;
    v.merge = prepared.merge;
    v.tower = input.tower;
    v.keep_all = input.keep_all;
    v.keep = input.keep;
    return v;
}

// Stage 3: encoder, merge, token selection and projector over all inputs, appended to `result` (values, counts, merged
// and kept per item). The caller holds the encoder's busy flag.
void encode_inputs(VisionEncoder & encoder, const std::vector<EncodeInput> & inputs, EmbeddingsData & result, const AbortFlagPtr & abort,
                   const JsProgress & progress, const VisionEncodeOptions & options) {
    std::vector<VisionItem> items(inputs.size());
    for (size_t i = 0; i < inputs.size(); i++) {
        VisionItem & v = items[i];
        v = vision_item(inputs[i]);
        result.merged.push_back(encoder.tokens_unpruned(v));
        result.kept.push_back(v.keep);
        result.all_kept.push_back(v.keep_all);
    }
    result.counts = encoder.encode(items, *result.values, abort, [&progress](int32_t done, int32_t total) { progress.report(done, total); }, options);
}

// Stage 3 with the encoder's states of the video's earlier frames: the inputs in order, each computing only its kept
// blocks (VisionEncoder::encode_changed). The caller holds the encoder's busy flag.
void encode_inputs_changed(VisionEncoder & encoder, const std::vector<EncodeInput> & inputs, EncoderReuse & reuse, EmbeddingsData & result,
                           const AbortFlagPtr & abort, const JsProgress & progress) {
    std::lock_guard<std::mutex> lock(reuse.mutex);
    for (size_t i = 0; i < inputs.size(); i++) {
        if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "vision encoding aborted");
        const VisionItem v = vision_item(inputs[i]);
        const int32_t computed = encoder.encode_changed(v, reuse.state, *result.values, abort);
        result.merged.push_back(encoder.tokens_unpruned(v));
        result.kept.push_back(v.keep);
        result.all_kept.push_back(v.keep_all);
        result.counts.push_back(encoder.tokens_out(v));
        result.rows_computed.push_back(computed);
        progress.report(static_cast<int32_t>(i + 1), static_cast<int32_t>(inputs.size()));
    }
}

// ---- JS-thread helpers of the encoding calls -----------------------------------------------------------------------

// The encoder runs one call at a time: claimed on the JS thread, released by the worker (BusyRelease).
void claim_encoder(Napi::Env env, VisionState & state, const JsProgress & progress) {
    bool expected = false;
    if (!state.busy.compare_exchange_strong(expected, true)) {
        progress.release();
        throw_js(env, "VL_BUSY", "the vision projector is already encoding");
    }
}

struct BusyRelease {
    std::atomic<bool> & busy;
    ~BusyRelease() { busy.store(false); }
};

std::shared_ptr<EmbeddingsData> new_result(const VisionHparams & hp) {
    auto result = std::make_shared<EmbeddingsData>();
    result->width = hp.proj_dim;
    result->values = std::make_shared<std::vector<float>>();
    return result;
}

// { embeddings, counts, merged, kept } of encode() and encodePatches().
Napi::Value encode_result_to_js(Napi::Env env, const EmbeddingsData & result) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("embeddings", EmbeddingsWrap::New(env, result));
    out.Set("counts", to_int32_array(env, result.counts));
    out.Set("merged", to_int32_array(env, result.merged));
    Napi::Array kept = Napi::Array::New(env, result.kept.size());
    for (size_t i = 0; i < result.kept.size(); i++) {
        kept.Set(static_cast<uint32_t>(i), result.all_kept[i] ? env.Null() : Napi::Value(to_int32_array(env, result.kept[i])));
    }
    out.Set("kept", kept);
    if (!result.rows_computed.empty()) out.Set("rowsComputed", to_int32_array(env, result.rows_computed));
    return out;
}

} // namespace

// ---- FrameState ---------------------------------------------------------------------------------------------------

Napi::Function FrameStateWrap::Init(Napi::Env env) {
    return DefineClass(env, "FrameState", {InstanceMethod<&FrameStateWrap::Reset>("reset")});
}

FrameStateWrap::FrameStateWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<FrameStateWrap>(info), state_(std::make_shared<FrameState>()) {}

Napi::Value FrameStateWrap::Reset(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->last.reset();
    return info.Env().Undefined();
}

// ---- EncoderReuse -------------------------------------------------------------------------------------------------

Napi::Function EncoderReuseWrap::Init(Napi::Env env) {
    return DefineClass(env, "EncoderReuse", {InstanceMethod<&EncoderReuseWrap::Reset>("reset")});
}

EncoderReuseWrap::EncoderReuseWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<EncoderReuseWrap>(info), state_(std::make_shared<EncoderReuse>()) {}

// Forgets the frames (the next one is encoded whole). Waits for an encode that uses these states.
Napi::Value EncoderReuseWrap::Reset(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->state.reset();
    return info.Env().Undefined();
}


// ---- Patches ------------------------------------------------------------------------------------------------------

Napi::Function PatchesWrap::Init(Napi::Env env) {
    return DefineClass(env, "Patches", {
        InstanceAccessor<&PatchesWrap::GridHeight>("gridHeight"),
        InstanceAccessor<&PatchesWrap::GridWidth>("gridWidth"),
        InstanceAccessor<&PatchesWrap::Merge>("merge"),
        InstanceAccessor<&PatchesWrap::Tokens>("tokens"),
        InstanceAccessor<&PatchesWrap::Tower>("tower"),
        InstanceMethod<&PatchesWrap::ToFloat32Array>("toFloat32Array"),
    });
}

PatchesWrap::PatchesWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<PatchesWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Patches are created by Vision.preprocess()");
    data_ = *info[0].As<Napi::External<PreparedPatchesPtr>>().Data();
    external_bytes_ = static_cast<int64_t>(data_->bytes());
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), external_bytes_);
}

PatchesWrap::~PatchesWrap() {
    if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
}

Napi::Object PatchesWrap::New(Napi::Env env, PreparedPatchesPtr data) {
    auto * holder = new PreparedPatchesPtr(std::move(data));
    auto ext = Napi::External<PreparedPatchesPtr>::New(env, holder, [](Napi::Env, PreparedPatchesPtr * p) { delete p; });
    return Addon::of(env).patches_ctor.New({ext});
}

PatchesWrap * PatchesWrap::unwrap(Napi::Env env, const Napi::Value & v, const std::string & name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).patches_ctor.Value())) {
        throw Napi::TypeError::New(env, name + " must be a Patches object (from Vision.preprocess())");
    }
    return Unwrap(v.As<Napi::Object>());
}

Napi::Value PatchesWrap::GridHeight(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), data_->patches.grid_h); }
Napi::Value PatchesWrap::GridWidth(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), data_->patches.grid_w); }
Napi::Value PatchesWrap::Merge(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), data_->merge); }
Napi::Value PatchesWrap::Tokens(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), data_->tokens()); }
Napi::Value PatchesWrap::Tower(const Napi::CallbackInfo & info) { return Napi::String::New(info.Env(), vision_tower_name(data_->tower)); }

// toFloat32Array() -> a copy of the patch rows (gridHeight × gridWidth rows of 3·p·p values, merge-block order)
Napi::Value PatchesWrap::ToFloat32Array(const Napi::CallbackInfo & info) {
    const std::vector<float> & values = data_->patches.values;
    Napi::Float32Array a = Napi::Float32Array::New(info.Env(), values.size());
    std::copy(values.begin(), values.end(), a.Data());
    return a;
}

// ---- Embeddings ---------------------------------------------------------------------------------------------------

Napi::Function EmbeddingsWrap::Init(Napi::Env env) {
    return DefineClass(env, "Embeddings", {
        InstanceAccessor<&EmbeddingsWrap::NTokens>("nTokens"),
        InstanceAccessor<&EmbeddingsWrap::Width>("width"),
        InstanceMethod<&EmbeddingsWrap::ToFloat32Array>("toFloat32Array"),
    });
}

EmbeddingsWrap::EmbeddingsWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<EmbeddingsWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Embeddings are created by Vision.encode()");
    data_ = *info[0].As<Napi::External<EmbeddingsData>>().Data();
}

Napi::Object EmbeddingsWrap::New(Napi::Env env, EmbeddingsData data) {
    auto * holder = new EmbeddingsData(std::move(data));
    auto ext = Napi::External<EmbeddingsData>::New(env, holder, [](Napi::Env, EmbeddingsData * p) { delete p; });
    return Addon::of(env).embeddings_ctor.New({ext});
}

EmbeddingsWrap * EmbeddingsWrap::unwrap(Napi::Env env, const Napi::Value & v, const char * name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).embeddings_ctor.Value())) {
        throw Napi::TypeError::New(env, std::string(name) + " must be an Embeddings object");
    }
    return Unwrap(v.As<Napi::Object>());
}

Napi::Value EmbeddingsWrap::NTokens(const Napi::CallbackInfo & info) {
    return Napi::Number::New(info.Env(), static_cast<double>(data_.values->size() / data_.width));
}

Napi::Value EmbeddingsWrap::Width(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), data_.width); }

// toFloat32Array(firstToken = 0, count = all) -> a copy of those rows
Napi::Value EmbeddingsWrap::ToFloat32Array(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const size_t n = data_.values->size() / data_.width;
    const size_t first = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    const size_t count = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : n - std::min(first, n);
    if (first + count > n) throw Napi::RangeError::New(env, "token range out of bounds");
    Napi::Float32Array a = Napi::Float32Array::New(env, count * data_.width);
    std::copy(data_.values->begin() + first * data_.width, data_.values->begin() + (first + count) * data_.width, a.Data());
    return a;
}

// ---- Vision -------------------------------------------------------------------------------------------------------

Napi::Function VisionWrap::Init(Napi::Env env) {
    return DefineClass(env, "Vision", {
        InstanceMethod<&VisionWrap::Hparams>("hparams"),
        InstanceMethod<&VisionWrap::Info>("info"),
        InstanceMethod<&VisionWrap::Encode>("encode"),
        InstanceMethod<&VisionWrap::Preprocess>("preprocess"),
        InstanceMethod<&VisionWrap::Prune>("prune"),
        InstanceMethod<&VisionWrap::EncodePatches>("encodePatches"),
        InstanceMethod<&VisionWrap::Dispose>("dispose"),
    });
}

VisionWrap::VisionWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<VisionWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Vision objects are created by loadVision()");
    state_ = *info[0].As<Napi::External<std::shared_ptr<VisionState>>>().Data();
}

Napi::Value VisionWrap::Hparams(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    const VisionHparams & hp = state_->model->hparams();
    Napi::Object o = Napi::Object::New(env);
    o.Set("family", vision_family_name(hp.family));
    o.Set("hidden", hp.hidden);
    o.Set("ffn", hp.ffn);
    o.Set("layers", hp.layers);
    o.Set("heads", hp.heads);
    o.Set("patchSize", hp.patch_size);
    o.Set("projectionDim", hp.proj_dim);
    o.Set("eps", hp.eps);
    o.Set("ropeTheta", hp.rope_theta);
    Napi::Array mean = Napi::Array::New(env, 3), stdv = Napi::Array::New(env, 3);
    for (uint32_t c = 0; c < 3; c++) {
        mean.Set(c, hp.mean[c]);
        stdv.Set(c, hp.std[c]);
    }
    o.Set("imageMean", mean);
    o.Set("imageStd", stdv);
    o.Set("rescaleFactor", hp.rescale);
    o.Set("imageMergeSize", hp.image_merge);
    o.Set("videoMergeSize", hp.video_merge);
    o.Set("imageMinTokens", hp.image_min_tokens);
    o.Set("imageMaxTokens", hp.image_max_tokens);
    o.Set("resample", hp.resample);
    o.Set("videoFps", hp.video_fps);
    o.Set("videoMaxFrames", hp.video_max_frames);
    o.Set("tokenCompression", hp.token_compression);
    o.Set("diffThreshold", hp.diff_threshold);
    o.Set("minTokensPerFrame", hp.min_tokens_per_frame);
    o.Set("imageTokenId", hp.image_token_id);
    o.Set("visionAct", hp.vision_act);
    o.Set("imageSize", hp.image_size);
    o.Set("shortestEdge", hp.shortest_edge);
    o.Set("videoFrames", hp.video_frames);
    o.Set("imageKeepCls", hp.image_keep_cls);
    o.Set("videoKeepCls", hp.video_keep_cls);
    o.Set("videoTokenId", hp.video_token_id);
    o.Set("hasVideoTower", hp.has_video_tower);
    return o;
}

Napi::Value VisionWrap::Info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", device_object(env, state_->model->device()));
    o.Set("weightsBytes", static_cast<double>(state_->model->weights_bytes()));
    o.Set("computeBytes", static_cast<double>(state_->busy.load() ? 0 : state_->encoder->compute_buffer_bytes()));
    return o;
}

// encode(items, { maxBatchPatches? }, onProgress?, abort?, frameState?) -> Promise<Embeddings>
// items: [{ rgb: Uint8Array, width, height, targetWidth, targetHeight, merge, crop?: { left, top, width, height },
//          tower?: "image" | "video", prune?: { threshold, minTokens } }]
// Items with `prune` are video frames compared, in order, with the previous frame (from frameState for the first one).
// The three stages in one task: what preprocess(), prune() and encodePatches() do one by one.
Napi::Value VisionWrap::Encode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    const VisionHparams & hp = state_->model->hparams();
    Napi::Array arr = arg_array(info, 0, "items");
    auto items = std::make_shared<std::vector<PendingItem>>(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
        const std::string where = "items[" + std::to_string(i) + "]";
        if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, where + " must be an object");
        Napi::Object o = arr.Get(i).As<Napi::Object>();
        PendingItem & it = (*items)[i];
        it.image = read_image(env, o, *state_->model, where);
        Napi::Value prune = o.Get("prune");
        if (prune.IsObject()) {
            it.prune = true;
            it.prune_params = read_prune_params(prune.As<Napi::Object>(), hp);
        }
    }
    Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    VisionEncodeOptions eo;
    eo.max_batch_patches = static_cast<int32_t>(opt_int(options, "maxBatchPatches", eo.max_batch_patches, 1, 1 << 24));
    AbortFlagPtr abort = AbortWrap::from(info, 3);
    std::shared_ptr<FrameState> frame_state;
    std::vector<Napi::Object> keep{info.This().As<Napi::Object>()};
    if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
        frame_state = frame_state_arg(env, info[4], "frameState")->state();
        keep.push_back(info[4].As<Napi::Object>());
    }
    JsProgress progress(env, info.Length() > 2 ? info[2] : env.Undefined(), "vidllama.encodeProgress");
    claim_encoder(env, *state_, progress);
    auto state = state_;
    auto result = new_result(hp);
    return PromiseWorker::run(
        env, "vidllama.encode",
        [state, items, eo, progress, abort, frame_state, result] {
            JsProgressRelease release{progress};
            BusyRelease busy{state->busy};
            const VisionHparams & hp = state->model->hparams();
            std::vector<EncodeInput> inputs(items->size());
            for (size_t i = 0; i < items->size(); i++) {
                if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "vision encoding aborted");
                inputs[i].patches = preprocess_image((*items)[i].image, hp);
                inputs[i].tower = inputs[i].patches->tower;
            }
            // An aborted call leaves frameState as it was; the pruned frames replace its frame together, at the end.
            if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "vision encoding aborted");
            {
                std::unique_lock<std::mutex> frame_lock;
                if (frame_state) frame_lock = std::unique_lock<std::mutex>(frame_state->mutex);
                PreparedPatchesPtr last = frame_state ? frame_state->last : nullptr;
                bool pruned = false;
                for (size_t i = 0; i < items->size(); i++) {
                    if (!(*items)[i].prune) continue;
                    set_keep(inputs[i], prune_frame(last, inputs[i].patches, (*items)[i].prune_params).keep);
                    pruned = true;
                }
                if (frame_state && pruned) frame_state->last = std::move(last);
            }
            encode_inputs(*state->encoder, inputs, *result, abort, progress, eo);
        },
        [result](Napi::Env env) -> Napi::Value { return encode_result_to_js(env, *result); },
        keep);
}

// preprocess(items, abort?) -> Promise<Patches[]>
// items: [{ rgb: Uint8Array, width, height, targetWidth, targetHeight, merge, crop?, tower? }] (the tower is recorded
// in the Patches, as encodePatches' default). Needs only the projector's settings, so it may run while the encoder
// works on an earlier batch.
Napi::Value VisionWrap::Preprocess(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    const VisionHparams & hp = state_->model->hparams();
    Napi::Array arr = arg_array(info, 0, "items");
    auto items = std::make_shared<std::vector<PendingImage>>(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
        const std::string where = "items[" + std::to_string(i) + "]";
        if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, where + " must be an object");
        (*items)[i] = read_image(env, arr.Get(i).As<Napi::Object>(), *state_->model, where);
    }
    AbortFlagPtr abort = AbortWrap::from(info, 1);
    auto state = state_;
    auto result = std::make_shared<std::vector<PreparedPatchesPtr>>(items->size());
    return PromiseWorker::run(
        env, "vidllama.preprocess",
        [state, items, abort, result] {
            const VisionHparams & hp = state->model->hparams();
            for (size_t i = 0; i < items->size(); i++) {
                if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "preprocessing aborted");
                (*result)[i] = preprocess_image((*items)[i], hp);
            }
        },
        [result](Napi::Env env) -> Napi::Value {
            Napi::Array out = Napi::Array::New(env, result->size());
            for (size_t i = 0; i < result->size(); i++) out.Set(static_cast<uint32_t>(i), PatchesWrap::New(env, (*result)[i]));
            return out;
        },
        {info.This().As<Napi::Object>()});
}

// prune(patches, frameState, { threshold?, minTokens? }?) -> { keep: Int32Array | null, distances?: Float32Array }
// DiffFP of one frame against the frame frameState holds (none, or another grid: a first frame, all kept), which this
// frame then replaces. keep: ascending merged-token indices, null when all are kept; distances: per merged token
// (mean |Δ| × 255), only when compared. Synchronous: the comparison is one pass over two frames.
Napi::Value VisionWrap::Prune(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    PatchesWrap * patches = PatchesWrap::unwrap(env, info.Length() > 0 ? info[0] : env.Undefined(), "patches");
    FrameStateWrap * frame_state = frame_state_arg(env, info.Length() > 1 ? info[1] : env.Undefined(), "frameState");
    const PruneParams params = read_prune_params(opt_object(info, 2, "options"), state_->model->hparams());
    const PreparedPatchesPtr & frame = patches->data();
    FrameDiffResult diff = guard(env, [&] {
        std::lock_guard<std::mutex> lock(frame_state->state()->mutex);
        return prune_frame(frame_state->state()->last, frame, params);
    });
    Napi::Object out = Napi::Object::New(env);
    out.Set("keep", static_cast<int32_t>(diff.keep.size()) == frame->tokens() ? env.Null() : Napi::Value(to_int32_array(env, diff.keep)));
    if (!diff.distances.empty()) {
        Napi::Float32Array distances = Napi::Float32Array::New(env, diff.distances.size());
        std::copy(diff.distances.begin(), diff.distances.end(), distances.Data());
        out.Set("distances", distances);
    }
    return out;
}

// encodePatches(items, { maxBatchPatches? }?, onProgress?, abort?) -> Promise<{ embeddings, counts, merged, kept }>
// items: [{ patches: Patches, keep?: Int32Array | null, tower?: "image" | "video" }]; keep: the ascending merged-token
// indices to project (what prune() returned; for CLIP, patch-token indices, the class token being kept where the
// tower keeps it), null or left out: all; tower: left out, the one the patches were preprocessed for.
Napi::Value VisionWrap::EncodePatches(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    const VisionHparams & hp = state_->model->hparams();
    const int32_t row_size = 3 * hp.patch_size * hp.patch_size;
    Napi::Array arr = arg_array(info, 0, "items");
    auto inputs = std::make_shared<std::vector<EncodeInput>>(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
        const std::string where = "items[" + std::to_string(i) + "]";
        if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, where + " must be an object");
        Napi::Object o = arr.Get(i).As<Napi::Object>();
        EncodeInput & input = (*inputs)[i];
        input.patches = PatchesWrap::unwrap(env, o.Get("patches"), where + ".patches")->data();
        if (input.patches->patches.row_size != row_size) {
            throw Napi::RangeError::New(env, where + ".patches were made for patches of " + std::to_string(input.patches->patches.row_size) +
                                                 " values, this projector's have " + std::to_string(row_size));
        }
        input.tower = read_tower(env, o, *state_->model, where, input.patches->tower);
        if (hp.is_clip()) {
            const int32_t side = hp.clip_grid();
            const Patches & p = input.patches->patches;
            if (input.patches->merge != 1 || p.grid_h != side || p.grid_w != side) {
                throw Napi::RangeError::New(env, where + ".patches are a " + std::to_string(p.grid_h) + "x" + std::to_string(p.grid_w) + " grid of merge " +
                                                     std::to_string(input.patches->merge) + "; this projector's CLIP towers encode " +
                                                     std::to_string(side) + "x" + std::to_string(side) + " of merge 1");
            }
            if (input.tower == VisionTowerId::Video && !hp.has_video_tower) {
                throw Napi::RangeError::New(env, where + ": the patches were preprocessed for the video tower, which this projector (" +
                                                     state_->model->path() + ") does not have");
            }
        }
        Napi::Value keep = o.Get("keep");
        if (keep.IsUndefined() || keep.IsNull()) continue;
        if (!keep.IsTypedArray() || keep.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            throw Napi::TypeError::New(env, where + ".keep must be an Int32Array or null");
        }
        Napi::Int32Array k = keep.As<Napi::Int32Array>();
        std::vector<int32_t> indices(k.Data(), k.Data() + k.ElementLength());
        const int32_t tokens = input.patches->tokens();
        for (size_t t = 0; t < indices.size(); t++) {
            if (indices[t] < 0 || indices[t] >= tokens || (t > 0 && indices[t] <= indices[t - 1])) {
                throw Napi::RangeError::New(env, where + ".keep must hold ascending token indices in [0, " + std::to_string(tokens) + ")");
            }
        }
        set_keep(input, std::move(indices));
    }
    Napi::Object options = opt_object(info, 1, "options");
    VisionEncodeOptions eo;
    eo.max_batch_patches = static_cast<int32_t>(opt_int(options, "maxBatchPatches", eo.max_batch_patches, 1, 1 << 24));
    std::vector<Napi::Object> keep_alive{info.This().As<Napi::Object>()};
    std::shared_ptr<EncoderReuse> reuse;
    Napi::Value reuse_value = options.Get("reuse");
    if (!reuse_value.IsUndefined() && !reuse_value.IsNull()) {
        reuse = encoder_reuse_arg(env, reuse_value, "options.reuse")->state();
        keep_alive.push_back(reuse_value.As<Napi::Object>());
        if (hp.is_clip()) throw Napi::TypeError::New(env, "options.reuse needs a NaViT (VideoLLaMA3) projector; " + state_->model->path() + " is a CLIP one");
    }
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull() && !info[2].IsFunction()) {
        throw Napi::TypeError::New(env, "onProgress must be a function");
    }
    AbortFlagPtr abort = AbortWrap::from(info, 3);
    JsProgress progress(env, info.Length() > 2 ? info[2] : env.Undefined(), "vidllama.encodeProgress");
    claim_encoder(env, *state_, progress);
    auto state = state_;
    auto result = new_result(hp);
    return PromiseWorker::run(
        env, "vidllama.encodePatches",
        [state, inputs, eo, reuse, progress, abort, result] {
            JsProgressRelease release{progress};
            BusyRelease busy{state->busy};
            if (reuse) {
                encode_inputs_changed(*state->encoder, *inputs, *reuse, *result, abort, progress);
            } else {
                encode_inputs(*state->encoder, *inputs, *result, abort, progress, eo);
            }
        },
        [result](Napi::Env env) -> Napi::Value { return encode_result_to_js(env, *result); },
        keep_alive);
}

Napi::Value VisionWrap::Dispose(const Napi::CallbackInfo & info) {
    state_.reset();
    return info.Env().Undefined();
}

// loadVision({ path, useGpu?, threads }, onProgress?, abort?) -> Promise<Vision>
Napi::Value LoadVision(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = arg_object(info, 0, "params");
    VisionModelParams p;
    Napi::Value path = o.Get("path");
    if (!path.IsString()) throw Napi::TypeError::New(env, "path must be a string");
    p.path = path.As<Napi::String>().Utf8Value();
    p.gpu = opt_string(o, "gpu", "auto");
    p.gpu_index = static_cast<int>(opt_int(o, "gpuIndex", 0, 0, 1 << 20));
    p.n_threads = static_cast<int32_t>(opt_int(o, "threads", 0, 1, 1024));
    JsProgress progress(env, info.Length() > 1 ? info[1] : env.Undefined(), "vidllama.visionLoadProgress");
    AbortFlagPtr abort = AbortWrap::from(info, 2);
    auto result = std::make_shared<std::shared_ptr<VisionState>>();
    return PromiseWorker::run(
        env, "vidllama.loadVision",
        [p, progress, abort, result] {
            JsProgressRelease release{progress};
            auto state = std::make_shared<VisionState>();
            state->model = VisionModel::load(p, [&progress](float f) { progress.report(f); }, abort);
            state->encoder = std::make_unique<VisionEncoder>(state->model);
            *result = state;
        },
        [result](Napi::Env env) -> Napi::Value {
            auto * holder = new std::shared_ptr<VisionState>(*result);
            auto ext = Napi::External<std::shared_ptr<VisionState>>::New(env, holder, [](Napi::Env, std::shared_ptr<VisionState> * h) { delete h; });
            return Addon::of(env).vision_ctor.New({ext});
        });
}

void register_vision_functions(Napi::Env env, Napi::Object exports) {
    exports.Set("loadVision", Napi::Function::New<LoadVision>(env, "loadVision"));
}

} // namespace vl
