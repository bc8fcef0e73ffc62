#include "chunks.h"

#include <cstdio>
#include <cstring>

#include "anim_native.h"

namespace anim {

uint32_t crc32(const unsigned char* data, size_t n) {
    static uint32_t table[256];
    static bool ready = false;
    if (!ready) {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = true;
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t rd32(const unsigned char* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
static uint64_t rd64(const unsigned char* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

static const size_t HEADER = 32, CHUNK_HEADER = 32 + 4 + 4 + 4 * 8;

ChunkFile::ChunkFile(const std::string& path, const char magic[8], uint32_t version) : path_(path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(ANIM_ERR_IO, path + ": cannot open the file");
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    if (size < 0) { std::fclose(f); throw Error(ANIM_ERR_IO, path + ": cannot read the file"); }
    blob_.resize(size_t(size));
    size_t got = size ? std::fread(blob_.data(), 1, blob_.size(), f) : 0;
    std::fclose(f);
    if (got != blob_.size()) throw Error(ANIM_ERR_IO, path + ": cannot read the file");
    if (blob_.size() < HEADER)
        throw Error(ANIM_ERR_FORMAT, path + ": too short for a header (" + std::to_string(blob_.size()) + " bytes)");
    if (std::memcmp(blob_.data(), magic, 8) != 0)
        throw Error(ANIM_ERR_FORMAT, path + ": not a " + std::string(magic, 8) + " file (bad magic)");
    uint32_t ver = rd32(&blob_[8]), hsize = rd32(&blob_[12]);
    uint64_t psize = rd64(&blob_[16]);
    uint32_t crc = rd32(&blob_[24]);
    if (ver != version)
        throw Error(ANIM_ERR_FORMAT, path + ": format version " + std::to_string(ver) + ", this core reads " +
                                         std::to_string(version));
    if (hsize != HEADER || uint64_t(blob_.size()) != hsize + psize)
        throw Error(ANIM_ERR_FORMAT, path + ": truncated or padded: the header says " + std::to_string(hsize + psize) +
                                         " bytes, the file has " + std::to_string(blob_.size()));
    const unsigned char* p = blob_.data() + HEADER;
    if (crc32(p, size_t(psize)) != crc) throw Error(ANIM_ERR_CHECKSUM, path + ": checksum mismatch (the file is corrupt)");
    uint64_t o = 0;
    while (o < psize) {
        if (o + CHUNK_HEADER > psize) fail("a chunk header is cut at byte " + std::to_string(HEADER + o));
        char name[33] = {0};
        std::memcpy(name, p + o, 32);
        Chunk c;
        c.dtype = rd32(p + o + 32);
        uint32_t ndim = rd32(p + o + 36);
        if (c.dtype < U8 || c.dtype > TEXT || ndim > 4)
            fail(std::string("chunk '") + name + "' has an unknown dtype " + std::to_string(c.dtype) + " or " +
                 std::to_string(ndim) + " dims");
        uint64_t count = 1;
        for (uint32_t d = 0; d < ndim; ++d) {
            c.shape.push_back(rd64(p + o + 40 + 8 * d));
            count *= c.shape.back();
        }
        static const uint64_t size_of[] = {0, 1, 4, 4, 8, 1};
        c.bytes = count * size_of[c.dtype];
        o += CHUNK_HEADER;
        if (c.bytes > psize - o) fail(std::string("chunk '") + name + "' runs past the end of the file");
        c.data = p + o;
        chunks_[name] = c;
        o += c.bytes + ((8 - c.bytes % 8) % 8);
    }
}

void ChunkFile::fail(const std::string& what) const { throw Error(ANIM_ERR_CONTENT, path_ + ": " + what); }

const Chunk& ChunkFile::get(const std::string& name) const {
    auto it = chunks_.find(name);
    if (it == chunks_.end()) fail("missing chunk '" + name + "'");
    return it->second;
}

template <class T>
std::vector<T> ChunkFile::array(const std::string& name, Dtype dt, std::vector<int64_t> shape,
                                std::vector<uint64_t>* got) const {
    static const char* names[] = {"?", "u8", "i32", "f32", "f64", "text"};
    const Chunk& c = get(name);
    if (c.dtype != uint32_t(dt)) fail("chunk '" + name + "' is " + names[c.dtype] + ", expected " + names[dt]);
    bool ok = c.shape.size() == shape.size();
    for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || uint64_t(shape[d]) == c.shape[d];
    if (!ok) {
        auto fmt = [](auto const& s) {
            std::string r = "[";
            for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + (int64_t(s[i]) < 0 ? std::string("*") : std::to_string(s[i]));
            return r + "]";
        };
        fail("chunk '" + name + "' has shape " + fmt(c.shape) + ", expected " + fmt(shape));
    }
    if (got) *got = c.shape;
    std::vector<T> out(c.bytes / sizeof(T));
    if (c.bytes) std::memcpy(out.data(), c.data, c.bytes);   // little-endian hosts (x86, ARM)
    return out;
}

template std::vector<uint8_t> ChunkFile::array(const std::string&, Dtype, std::vector<int64_t>, std::vector<uint64_t>*) const;
template std::vector<int32_t> ChunkFile::array(const std::string&, Dtype, std::vector<int64_t>, std::vector<uint64_t>*) const;
template std::vector<float> ChunkFile::array(const std::string&, Dtype, std::vector<int64_t>, std::vector<uint64_t>*) const;
template std::vector<double> ChunkFile::array(const std::string&, Dtype, std::vector<int64_t>, std::vector<uint64_t>*) const;

std::string ChunkFile::text(const std::string& name) const {
    const Chunk& c = get(name);
    if (c.dtype != TEXT) fail("chunk '" + name + "' is not text");
    return std::string(reinterpret_cast<const char*>(c.data), size_t(c.bytes));
}

std::vector<std::string> ChunkFile::lines(const std::string& name) const {
    std::string t = text(name);
    std::vector<std::string> out;
    if (t.empty()) return out;
    size_t a = 0;
    while (true) {
        size_t b = t.find('\n', a);
        out.push_back(t.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
        a = b + 1;
    }
    return out;
}

}  // namespace anim
