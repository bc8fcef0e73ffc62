#include "learned.h"

#include "chunks.h"

namespace anim {

std::unique_ptr<Source> LearnedSource::load(const std::string& path, Setup*) {
    throw Error(ANIM_ERR_FORMAT, path + ": learned motion matching is not built into this core yet");
}

}  // namespace anim
