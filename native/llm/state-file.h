// Session state files: "VLSTATE1", a little-endian u32 header length, the header (JSON written by the TypeScript
// layer: model identity, history, token timeline), then libllama's sequence state. The header is read and checked
// in TypeScript before the state is restored, so a file from another model is refused before libllama sees it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llm/context.h"

namespace vl {

// Returns the number of bytes written. Writes to `path` directly: the caller picks a temporary name and renames.
uint64_t state_file_save(TextContext & ctx, const std::string & path, const std::vector<uint8_t> & header);
// Restores the state; throws Io for unreadable/truncated files and StateMismatch when libllama refuses the state.
void state_file_load(TextContext & ctx, const std::string & path);

} // namespace vl
