"""What leaves the Python engine for other engines: the runtime database for
the native core (`export.runtime_db`), the C++17 core itself (`export/native/`)
and its Unity and Unreal wrappers (`export/unity/`, `export/unreal/`)."""
