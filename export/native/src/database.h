// Motion matching's source: the runtime database (FORMAT.md) and its exact
// nearest-neighbour search.
//
// The search is Holden's bounding-box scan (database.h of his Motion-Matching
// demo): frames in blocks of 16 and 64 with the min/max box of each block's
// matchable frames; a linear pass skips every block whose box is farther than
// the best so far. Exact, like the Python kd-tree (anim/search.py): it returns
// a frame at the minimum squared distance, the current frame when it ties
// (`init`), and distances are float32 summed in numpy's pairwise order so that
// the costs compared with the transition margin round as Python's do. Chosen
// over a port of the Python wide kd-tree because it is 100 lines with no build
// step per style mask, and on a 90k-frame database it runs in tens of
// microseconds (bench/native.py measures the whole tick).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "controller.h"

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
    static Database load(const std::string& path);
};

class AabbIndex {
public:
    static constexpr int SMALL = 16, LARGE = 64;
    void build(const float* X, const uint8_t* valid, int N, int F);
    // candidates: cand [N] (valid & mask); returns frame or -1 and its cost
    int query(const float* q, const uint8_t* cand, const uint8_t* any_sm, const uint8_t* any_lr, int init,
              float* cost) const;
    static void block_any(const uint8_t* cand, int N, int size, std::vector<uint8_t>* out);
    int N = 0, F = 0;
    const float* X = nullptr;
    std::vector<float> b_sm, b_lr;   // [blocks][2][F]
};

float sqdist_pairwise(const float* a, const float* b, int F);

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
    AabbIndex index;
    // per style (index 0: every style): candidates, and which blocks hold one
    std::vector<std::vector<uint8_t>> cand, any_sm, any_lr;
    int mask = 0;
};

}  // namespace anim
