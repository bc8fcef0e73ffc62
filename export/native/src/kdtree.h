// Exact nearest-neighbour search over a runtime database's features: a
// kd-tree (median splits on the widest axis, 16 frames per leaf) built in the
// principal axes of the matchable frames, as anim/search.py's KDTree does (a
// rotation keeps distances; axis-aligned boxes fit the data far better).
// Boxes only prune: every frame that could be nearest is measured exactly on
// its original features (float32, numpy's pairwise order), so the answer is
// the same minimum as the Python index's, and the current frame (`init`) is
// kept when it ties. Box distances carry a small relative margin against the
// rounding of the rotation, so pruning never drops a true minimum.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace anim {

float sqdist_pairwise(const float* a, const float* b, int F);

struct Rotation {
    int F = 0;
    std::vector<double> mean, R;    // y = (x - mean) R, R [F*F] row-major (columns: principal axes)
    void fit(const float* X, const uint8_t* valid, int N, int F);
};

class KdTree {
public:
    static constexpr int LEAF = 16;
    void build(const float* X, const uint8_t* cand, int N, int F, const Rotation* rot);
    // nearest candidate to q: frame index (or -1) and its cost; scratch: a stack the tree sized
    int query(const float* q, int init, float* cost) const;
    size_t nbytes() const;

private:
    struct Node { int32_t begin, end, left, right; };
    int F = 0;
    const Rotation* rot = nullptr;
    const uint8_t* cand = nullptr;
    const float* X = nullptr;
    std::vector<Node> nodes;
    std::vector<float> lo, hi;      // [nodes*F] boxes in the rotated space (while building)
    std::vector<float> kids;        // [nodes*4F] a node's children's boxes side by side: lo, hi of
                                    // the left child, then of the right one (one block per visit)
    std::vector<float> rows;        // [M*F] candidate features (original space) in leaf order
    std::vector<int32_t> ids;       // [M] their frames
    int depth = 0;
    int make(std::vector<float>& Y, int b, int e, int d);
};

}  // namespace anim
