// Learned motion matching's source (controllers/learned): the decompressor,
// stepper and projector evaluated in plain C++ from an exported weights file.
#pragma once
#include <memory>
#include <string>

#include "controller.h"

namespace anim {

class LearnedSource : public Source {
public:
    static std::unique_ptr<Source> load(const std::string& path, Setup* setup);
};

}  // namespace anim
