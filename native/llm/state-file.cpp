#include "llm/state-file.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "common/error.h"

namespace vl {

namespace {

constexpr char kMagic[8] = {'V', 'L', 'S', 'T', 'A', 'T', 'E', '1'};

struct FileCloser {
    void operator()(FILE * f) const { if (f) std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

} // namespace

uint64_t state_file_save(TextContext & ctx, const std::string & path, const std::vector<uint8_t> & header) {
    const std::vector<uint8_t> state = ctx.state_get();
    FilePtr f(std::fopen(path.c_str(), "wb"));
    if (!f) throw Error(ErrorCode::Io, "cannot open " + path + " for writing");
    const uint32_t n = static_cast<uint32_t>(header.size());
    const uint8_t len[4] = {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 24)};
    bool ok = std::fwrite(kMagic, 1, sizeof(kMagic), f.get()) == sizeof(kMagic) && std::fwrite(len, 1, 4, f.get()) == 4 &&
              std::fwrite(header.data(), 1, header.size(), f.get()) == header.size() &&
              std::fwrite(state.data(), 1, state.size(), f.get()) == state.size();
    ok = (std::fclose(f.release()) == 0) && ok;
    if (!ok) throw Error(ErrorCode::Io, "could not write " + path + " (disk full?)");
    return sizeof(kMagic) + 4 + header.size() + state.size();
}

void state_file_load(TextContext & ctx, const std::string & path) {
    FilePtr f(std::fopen(path.c_str(), "rb"));
    if (!f) throw Error(ErrorCode::Io, "cannot open " + path);
    char magic[8];
    uint8_t len[4];
    if (std::fread(magic, 1, 8, f.get()) != 8 || std::memcmp(magic, kMagic, 8) != 0 || std::fread(len, 1, 4, f.get()) != 4) {
        throw Error(ErrorCode::Io, path + " is not a vidllama session state file");
    }
    const uint32_t header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
    if (std::fseek(f.get(), static_cast<long>(header_len), SEEK_CUR) != 0) throw Error(ErrorCode::Io, path + " is truncated");
    std::vector<uint8_t> state;
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof(buf), f.get())) > 0) state.insert(state.end(), buf, buf + got);
    if (std::ferror(f.get())) throw Error(ErrorCode::Io, "could not read " + path);
    if (state.empty()) throw Error(ErrorCode::Io, path + " holds no state");
    ctx.state_set(state);
}

} // namespace vl
