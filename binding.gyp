# node-gyp entry point. The addon is built by CMake (CMakeLists.txt) through cmake-js; this file only delegates to
# scripts/build-native.mjs so that `node-gyp rebuild` (node-gyp-build's install fallback, prebuildify,
# @electron/rebuild) produces the same addon at build/Release/vidllama.node.
{
  "targets": [
    {
      "target_name": "vidllama",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["<(PRODUCT_DIR)/vidllama.node"],
          "action": ["node", "scripts/build-native.mjs", "--out", "<(PRODUCT_DIR)"]
        }
      ]
    }
  ]
}
