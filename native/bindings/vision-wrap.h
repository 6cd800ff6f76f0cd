// JS classes of the vision side: Vision (a loaded mmproj), Patches (one preprocessed image or frame kept in native
// memory, between the pipeline's stages), Embeddings (encoder output kept in native memory, fed to a context without
// a copy through JS) and FrameState (the previous video frame, for pruning across calls).
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings/addon.h"
#include "encode/vision-encoder.h"
#include "encode/vision-model.h"
#include "preprocess/patchify.h"

namespace vl {

struct VisionState;

// One image or frame after resize, normalize and patchify. Immutable once made, so a Patches object, the FrameState
// that holds it as its last frame and an encode in progress share it without copies.
struct PreparedPatches {
    Patches patches; // rows in merge-block order for `merge`
    int32_t merge = 1;
    // The tower named when preprocessing (the default of encodePatches for these patches).
    VisionTowerId tower = VisionTowerId::Image;

    int32_t tokens() const { return (patches.grid_h / merge) * (patches.grid_w / merge); }
    size_t bytes() const { return patches.values.size() * sizeof(float) + patches.positions.size() * sizeof(int32_t); }
};
using PreparedPatchesPtr = std::shared_ptr<const PreparedPatches>;

struct FrameState {
    std::mutex mutex;
    PreparedPatchesPtr last; // the last pruned frame (guarded by mutex); null: the next frame is a first frame
};

struct EmbeddingsData {
    std::shared_ptr<std::vector<float>> values; // n_tokens × width
    int32_t width = 0;
    std::vector<int32_t> counts;              // output tokens per item
    std::vector<int32_t> merged;              // output tokens per item before pruning (with the class token if kept)
    std::vector<std::vector<int32_t>> kept;   // kept (patch) token indices per pruned item
    std::vector<bool> all_kept;
    // encodePatches({ reuse }): patches computed per item (all of a frame encoded whole).
    std::vector<int32_t> rows_computed;
};

class FrameStateWrap : public Napi::ObjectWrap<FrameStateWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit FrameStateWrap(const Napi::CallbackInfo & info);
    const std::shared_ptr<FrameState> & state() const { return state_; }

  private:
    Napi::Value Reset(const Napi::CallbackInfo & info);
    std::shared_ptr<FrameState> state_;
};

// The encoder's states of one video's frames (EncoderReuseState), for encodePatches({ reuse }): only the changed blocks
// of each frame are computed. Guarded by its mutex while an encode uses it.
struct EncoderReuse {
    std::mutex mutex;
    EncoderReuseState state;
};

class EncoderReuseWrap : public Napi::ObjectWrap<EncoderReuseWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit EncoderReuseWrap(const Napi::CallbackInfo & info);
    const std::shared_ptr<EncoderReuse> & state() const { return state_; }

  private:
    Napi::Value Reset(const Napi::CallbackInfo & info);
    std::shared_ptr<EncoderReuse> state_;
};

class PatchesWrap : public Napi::ObjectWrap<PatchesWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Object New(Napi::Env env, PreparedPatchesPtr data);
    static PatchesWrap * unwrap(Napi::Env env, const Napi::Value & v, const std::string & name);
    explicit PatchesWrap(const Napi::CallbackInfo & info);
    ~PatchesWrap() override;
    const PreparedPatchesPtr & data() const { return data_; }

  private:
    Napi::Value GridHeight(const Napi::CallbackInfo & info);
    Napi::Value GridWidth(const Napi::CallbackInfo & info);
    Napi::Value Merge(const Napi::CallbackInfo & info);
    Napi::Value Tokens(const Napi::CallbackInfo & info);
    Napi::Value Tower(const Napi::CallbackInfo & info);
    Napi::Value ToFloat32Array(const Napi::CallbackInfo & info);
    PreparedPatchesPtr data_;
    int64_t external_bytes_ = 0; // reported to V8, so that unreachable Patches are collected in time
};

class EmbeddingsWrap : public Napi::ObjectWrap<EmbeddingsWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Object New(Napi::Env env, EmbeddingsData data);
    static EmbeddingsWrap * unwrap(Napi::Env env, const Napi::Value & v, const char * name);
    explicit EmbeddingsWrap(const Napi::CallbackInfo & info);
    const EmbeddingsData & data() const { return data_; }

  private:
    Napi::Value NTokens(const Napi::CallbackInfo & info);
    Napi::Value Width(const Napi::CallbackInfo & info);
    Napi::Value ToFloat32Array(const Napi::CallbackInfo & info);
    EmbeddingsData data_;
};

class VisionWrap : public Napi::ObjectWrap<VisionWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit VisionWrap(const Napi::CallbackInfo & info);

  private:
    Napi::Value Hparams(const Napi::CallbackInfo & info);
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Encode(const Napi::CallbackInfo & info);
    Napi::Value Preprocess(const Napi::CallbackInfo & info);
    Napi::Value Prune(const Napi::CallbackInfo & info);
    Napi::Value EncodePatches(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    std::shared_ptr<VisionState> state_;
};

} // namespace vl
