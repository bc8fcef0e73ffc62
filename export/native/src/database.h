// Motion matching's source: the runtime database (FORMAT.md) and its exact
// nearest-neighbour search.
//
// The search (kdtree.h) is exact, like the Python index: the same minimum,
// the current frame kept when it ties, distances summed in float32 in numpy's
// pairwise order so that the costs compared with the transition margin round
// as Python's do. Takes that share frames hold identical rows; between those
// the two may pick different copies of the same frame.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "controller.h"
#include "kdtree.h"

namespace anim {


struct Database {
    Setup setup;

    int N = 0, F = 0, C = 0;
    std::vector<float> X;              // [N*F]
    std::vector<uint8_t> valid;        // [N]
    std::vector<int32_t> frame_stop;   // [N]: one past the last frame of each frame's clip
    std::vector<int32_t> clip_style;   // [C]
    std::vector<int32_t> ranges;       // [C*2]
    std::vector<float> root_speed;     // [N]
    std::vector<float> rot, pos, vel, avel;   // [N*J*4], [N*J*3] x3
    std::vector<uint8_t> contacts;     // [N*2]
    // the search: per style (index 0: every style, s + 1: style s) the
    // candidate frames and a kd-tree over them, in the principal axes `rot`
    Rotation axes;
    std::vector<std::vector<uint8_t>> cand;
    std::vector<KdTree> trees;
    static Database load(const std::string& path);
    // Characters created from the same file (same path, size and time) share one loaded database.
    static std::shared_ptr<const Database> shared(const std::string& path);
};



class DatabaseSource : public Source {
public:
    explicit DatabaseSource(std::shared_ptr<const Database> db);
    void set_style(int style) override;
    void reset() override;
    const float* features() const override { return &db->X[size_t(cur) * db->F]; }
    bool at_end() const override { return cur + 1 >= db->frame_stop[cur]; }
    bool search(const float* query, bool must_move, double margin, double* cost) override;
    void advance(double) override { if (cur + 1 < db->frame_stop[cur]) cur += 1; }
    const float* rot() const override { return &db->rot[size_t(cur) * J * 4]; }
    const float* pos() const override { return &db->pos[size_t(cur) * J * 3]; }
    const float* vel() const override { return &db->vel[size_t(cur) * J * 3]; }
    const float* avel() const override { return &db->avel[size_t(cur) * J * 3]; }
    const uint8_t* contacts() const override { return &db->contacts[size_t(cur) * 2]; }
    int64_t frame() const override { return cur; }
    int num_features() const override { return db->F; }

private:
    std::shared_ptr<const Database> db;
    int J = 0;
    int cur = 0;
    int mask = 0;     // 0: every style, s + 1: style s
};

}  // namespace anim
