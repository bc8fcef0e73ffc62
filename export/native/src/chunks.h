// Reading the chunked little-endian files of this core (runtime databases and
// learned weights share the container): a 32-byte header (magic, version,
// header size, payload size, CRC-32 of the payload), then named chunks. See
// FORMAT.md. Every accessor checks a chunk's type and shape and throws
// anim::Error naming the file and the problem.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace anim {

struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string& m) : std::runtime_error(m), code(c) {}
};

enum Dtype : uint32_t { U8 = 1, I32 = 2, F32 = 3, F64 = 4, TEXT = 5 };

struct Chunk {
    uint32_t dtype = 0;
    std::vector<uint64_t> shape;
    const unsigned char* data = nullptr;
    uint64_t bytes = 0;
};

class ChunkFile {
public:
    // Reads and checks the whole file; throws Error.
    ChunkFile(const std::string& path, const char magic[8], uint32_t version);

    const std::string& path() const { return path_; }
    bool has(const std::string& name) const { return chunks_.count(name) != 0; }
    // Copies a chunk of the given dtype; `shape` entries < 0 are free (returned in `got`).
    template <class T>
    std::vector<T> array(const std::string& name, Dtype dt, std::vector<int64_t> shape,
                         std::vector<uint64_t>* got = nullptr) const;
    std::string text(const std::string& name) const;
    std::vector<std::string> lines(const std::string& name) const;
    [[noreturn]] void fail(const std::string& what) const;

private:
    const Chunk& get(const std::string& name) const;
    std::string path_;
    std::vector<unsigned char> blob_;
    std::map<std::string, Chunk> chunks_;
};

uint32_t crc32(const unsigned char* data, size_t n);

}  // namespace anim
