"""What goes to other engines: glTF animations (`export.gltf`), ONNX networks
(`export.onnx_export`) and the `anim export` command (`export.cli`). Each
written file is checked by a client no one here wrote (the Khronos
glTF-Validator, three.js in headless Chromium, onnxruntime; `export/web/`)."""
