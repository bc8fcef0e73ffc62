"""What goes to other engines: glTF animations (`export.gltf`), ONNX networks
(`export.onnx_export`), the native core's runtime files (`export.runtime_db`)
and the `anim export` command (`export.cli`). Each written file is checked by a
client no one here wrote (the Khronos glTF-Validator, three.js in headless
Chromium, onnxruntime; `export/web/`) or, for the runtime files, by the C++17
core that plays them (`export/native/`, wrapped by `export/unity/` and
`export/unreal/`), tick by tick against the Python controllers."""
