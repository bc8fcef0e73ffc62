#include "kdtree.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace anim {

float sqdist_pairwise(const float* a, const float* b, int F) {
    // numpy's pairwise float32 sum of (a - b)**2 (what np.sum does for F <= 128)
    float t[128];
    for (int f = 0; f < F; ++f) {
        float d = a[f] - b[f];
        t[f] = d * d;
    }
    if (F < 8) {
        float r = 0.f;
        for (int f = 0; f < F; ++f) r += t[f];
        return r;
    }
    float r[8];
    for (int k = 0; k < 8; ++k) r[k] = t[k];
    int i = 8;
    for (; i < F - (F % 8); i += 8)
        for (int k = 0; k < 8; ++k) r[k] += t[i + k];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < F; ++i) res += t[i];
    return res;
}

// Cyclic Jacobi eigen-decomposition of a symmetric matrix A [n*n] (in place): eigenvectors in V's columns.
static void jacobi(std::vector<double>& A, int n, std::vector<double>& V, std::vector<double>& w) {
    V.assign(size_t(n) * n, 0.0);
    for (int i = 0; i < n; ++i) V[size_t(i) * n + i] = 1.0;
    for (int sweep = 0; sweep < 100; ++sweep) {
        double off = 0.0;
        for (int p = 0; p < n; ++p)
            for (int q = p + 1; q < n; ++q) off += A[size_t(p) * n + q] * A[size_t(p) * n + q];
        if (off < 1e-22) break;
        for (int p = 0; p < n; ++p)
            for (int q = p + 1; q < n; ++q) {
                double apq = A[size_t(p) * n + q];
                if (std::abs(apq) < 1e-300) continue;
                double app = A[size_t(p) * n + p], aqq = A[size_t(q) * n + q];
                double theta = (aqq - app) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
                double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; ++k) {          // A = J^T A J
                    double akp = A[size_t(k) * n + p], akq = A[size_t(k) * n + q];
                    A[size_t(k) * n + p] = c * akp - s * akq;
                    A[size_t(k) * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; ++k) {
                    double apk = A[size_t(p) * n + k], aqk = A[size_t(q) * n + k];
                    A[size_t(p) * n + k] = c * apk - s * aqk;
                    A[size_t(q) * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; ++k) {
                    double vkp = V[size_t(k) * n + p], vkq = V[size_t(k) * n + q];
                    V[size_t(k) * n + p] = c * vkp - s * vkq;
                    V[size_t(k) * n + q] = s * vkp + c * vkq;
                }
            }
    }
    w.resize(n);
    for (int i = 0; i < n; ++i) w[i] = A[size_t(i) * n + i];
}

void Rotation::fit(const float* X, const uint8_t* valid, int N, int F_) {
    F = F_;
    mean.assign(F, 0.0);
    std::vector<double> C(size_t(F) * F, 0.0);
    long m = 0;
    for (int i = 0; i < N; ++i) {
        if (!valid[i]) continue;
        ++m;
        for (int f = 0; f < F; ++f) mean[f] += X[size_t(i) * F + f];
    }
    for (int f = 0; f < F; ++f) mean[f] /= double(std::max(m, 1L));
    std::vector<double> d(F);
    for (int i = 0; i < N; ++i) {
        if (!valid[i]) continue;
        for (int f = 0; f < F; ++f) d[f] = X[size_t(i) * F + f] - mean[f];
        for (int a = 0; a < F; ++a)
            for (int b = a; b < F; ++b) C[size_t(a) * F + b] += d[a] * d[b];
    }
    for (int a = 0; a < F; ++a)
        for (int b = 0; b < a; ++b) C[size_t(a) * F + b] = C[size_t(b) * F + a];
    std::vector<double> V, w;
    jacobi(C, F, V, w);
    std::vector<int> order(F);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return w[a] > w[b]; });
    R.assign(size_t(F) * F, 0.0);
    for (int c = 0; c < F; ++c)
        for (int r = 0; r < F; ++r) R[size_t(r) * F + c] = V[size_t(r) * F + order[c]];
}

static void rotate(const Rotation& rot, const float* x, float* y) {
    const int F = rot.F;
    for (int c = 0; c < F; ++c) {
        double s = 0.0;
        for (int r = 0; r < F; ++r) s += (double(x[r]) - rot.mean[r]) * rot.R[size_t(r) * F + c];
        y[c] = float(s);
    }
}

int KdTree::make(std::vector<float>& Y, int b, int e, int d) {
    depth = std::max(depth, d + 1);
    int n = int(nodes.size());
    nodes.push_back(Node{b, e, -1, -1});
    lo.resize(size_t(nodes.size()) * F);
    hi.resize(size_t(nodes.size()) * F);
    float* l = &lo[size_t(n) * F];
    float* h = &hi[size_t(n) * F];
    for (int f = 0; f < F; ++f) { l[f] = std::numeric_limits<float>::infinity(); h[f] = -l[f]; }
    for (int i = b; i < e; ++i)
        for (int f = 0; f < F; ++f) {
            l[f] = std::min(l[f], Y[size_t(i) * F + f]);
            h[f] = std::max(h[f], Y[size_t(i) * F + f]);
        }
    if (e - b <= LEAF) return n;
    int axis = 0;
    for (int f = 1; f < F; ++f)
        if (h[f] - l[f] > h[axis] - l[axis]) axis = f;
    int mid = b + (e - b) / 2;
    // order the rows [b, e) by their coordinate on `axis` around mid (rows, ids and Y together)
    std::vector<int> idx(e - b);
    std::iota(idx.begin(), idx.end(), b);
    std::nth_element(idx.begin(), idx.begin() + (mid - b), idx.end(), [&](int a, int c) {
        float ya = Y[size_t(a) * F + axis], yc = Y[size_t(c) * F + axis];
        return ya < yc || (ya == yc && ids[a] < ids[c]);
    });
    std::vector<float> y2(size_t(e - b) * F), r2(size_t(e - b) * F);
    std::vector<int32_t> i2(e - b);
    for (int k = 0; k < e - b; ++k) {
        std::copy_n(&Y[size_t(idx[k]) * F], F, &y2[size_t(k) * F]);
        std::copy_n(&rows[size_t(idx[k]) * F], F, &r2[size_t(k) * F]);
        i2[k] = ids[idx[k]];
    }
    std::copy(y2.begin(), y2.end(), Y.begin() + size_t(b) * F);
    std::copy(r2.begin(), r2.end(), rows.begin() + size_t(b) * F);
    std::copy(i2.begin(), i2.end(), ids.begin() + b);
    int left = make(Y, b, mid, d + 1);
    int right = make(Y, mid, e, d + 1);
    nodes[n].left = left;
    nodes[n].right = right;
    return n;
}

void KdTree::build(const float* X_, const uint8_t* cand_, int N, int F_, const Rotation* rot_) {
    X = X_; cand = cand_; F = F_; rot = rot_;
    nodes.clear(); lo.clear(); hi.clear(); rows.clear(); ids.clear();
    depth = 0;
    for (int i = 0; i < N; ++i)
        if (cand[i]) ids.push_back(i);
    const int M = int(ids.size());
    rows.resize(size_t(M) * F);
    std::vector<float> Y(size_t(M) * F);
    for (int k = 0; k < M; ++k) {
        std::copy_n(X + size_t(ids[k]) * F, F, &rows[size_t(k) * F]);
        rotate(*rot, X + size_t(ids[k]) * F, &Y[size_t(k) * F]);
    }
    if (M > 0) make(Y, 0, M, 0);
    kids.assign(nodes.size() * 4 * size_t(F), 0.f);
    for (size_t n = 0; n < nodes.size(); ++n) {
        if (nodes[n].left < 0) continue;
        float* k = &kids[n * 4 * F];
        std::copy_n(&lo[size_t(nodes[n].left) * F], F, k);
        std::copy_n(&hi[size_t(nodes[n].left) * F], F, k + F);
        std::copy_n(&lo[size_t(nodes[n].right) * F], F, k + 2 * F);
        std::copy_n(&hi[size_t(nodes[n].right) * F], F, k + 3 * F);
    }
    lo.resize(F);          // the root's box is all the query needs of these
    hi.resize(F);
    lo.shrink_to_fit();
    hi.shrink_to_fit();
}

size_t KdTree::nbytes() const {
    return nodes.size() * sizeof(Node) + (lo.size() + hi.size() + kids.size() + rows.size()) * sizeof(float) +
           ids.size() * 4;
}

// Squared distance from q to a box; stops early (returning a partial sum, still a
// lower bound) once the sum is past `stop`.
static inline float box_dist(const float* q, const float* l, const float* h, int F,
                             float stop = std::numeric_limits<float>::infinity()) {
    float acc = 0.f;
    int f = 0;
    for (int end = std::min(8, F); ; end = std::min(end + 8, F)) {
        for (; f < end; ++f) {
            float t = std::max(std::max(l[f] - q[f], q[f] - h[f]), 0.f);
            acc += t * t;
        }
        if (f >= F || acc > stop) return acc;
    }
}

int KdTree::query(const float* q, int init, float* cost) const {
    int best_i = -1;
    float best_d = std::numeric_limits<float>::infinity();
    if (init >= 0 && cand[init]) {
        best_i = init;
        best_d = sqdist_pairwise(X + size_t(init) * F, q, F);
    }
    if (nodes.empty()) { *cost = best_d; return best_i; }
    float qr[128];
    rotate(*rot, q, qr);
    // a box is skipped only when clearly beyond the best (rotation rounding: ~1e-6 relative)
    auto beyond = [&](float bd) { return bd * (1.0f - 1e-4f) - 1e-6f >= best_d; };
    int stack_n[128];
    float stack_d[128];
    int sp = 0;
    stack_n[sp] = 0;
    stack_d[sp++] = box_dist(qr, &lo[0], &hi[0], F);
    while (sp > 0) {
        --sp;
        if (beyond(stack_d[sp])) continue;
        const Node& nd = nodes[stack_n[sp]];
        if (nd.left < 0) {
            // a running sum that passes the best (with a margin for the summation order) rules
            // the frame out; the others are measured in numpy's order
            const float cut = best_d * (1.0f + 1e-5f) + 1e-30f;
            for (int k = nd.begin; k < nd.end; ++k) {
                const float* row = &rows[size_t(k) * F];
                float acc = 0.f;
                int f = 0;
                for (; f < F; ++f) {
                    float t = row[f] - q[f];
                    acc += t * t;
                    if ((f & 7) == 7 && acc > cut) break;
                }
                if (f < F) continue;
                float d = sqdist_pairwise(row, q, F);
                if (d < best_d) { best_d = d; best_i = ids[k]; }
            }
            continue;
        }
        const float* k = &kids[size_t(stack_n[sp]) * 4 * F];
        const float stop = (best_d + 1e-6f) / (1.0f - 1e-4f);    // past it, `beyond` holds
        float dl = box_dist(qr, k, k + F, F, stop);
        float dr = box_dist(qr, k + 2 * F, k + 3 * F, F, stop);
        int near = nd.left, far = nd.right;
        if (dr < dl) { std::swap(near, far); std::swap(dl, dr); }
        if (!beyond(dr)) { stack_n[sp] = far; stack_d[sp++] = dr; }
        if (!beyond(dl)) { stack_n[sp] = near; stack_d[sp++] = dl; }
    }
    *cost = best_d;
    return best_i;
}

}  // namespace anim
