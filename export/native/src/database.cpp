#include "database.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "chunks.h"

namespace anim {

static const char MAGIC_DB[8] = {'A', 'N', 'I', 'M', 'R', 'T', 'D', 'B'};
static const uint32_t VERSION_DB = 1;

// Reads the parts every controller file shares (skeleton, feet, trajectory, features' normalization, speeds, config).
void read_setup(const ChunkFile& f, Setup* s, int* F_out) {
    s->names = f.lines("skeleton.names");
    const int J = int(s->names.size());
    if (J < 4) f.fail("the skeleton has " + std::to_string(J) + " joints (at least 4: a root and two-bone legs)");
    s->sk.J = J;
    s->sk.parents = f.array<int32_t>("skeleton.parents", I32, {J});
    auto off = f.array<float>("skeleton.offsets", F32, {J, 3});
    s->sk.offsets.resize(J);
    for (int j = 0; j < J; ++j) {
        int p = s->sk.parents[j];
        if (p >= j || p < -1 || (j == 0) != (p < 0))
            f.fail("joint " + std::to_string(j) + " ('" + s->names[j] + "') has parent " + std::to_string(p) +
                   " (joint 0 is the only root; parents come before children)");
        s->sk.offsets[j] = V3{off[3 * j], off[3 * j + 1], off[3 * j + 2]};
    }
    auto feet = f.array<int32_t>("feet", I32, {2});
    auto toes = f.array<int32_t>("toes", I32, {2});
    for (int i = 0; i < 2; ++i) {
        auto bad = [&](int j) { return j < 0 || j >= J; };
        if (bad(feet[i]) || bad(toes[i]) || s->sk.parents[toes[i]] != feet[i])
            f.fail("feet/toes joint indices out of range or a toe not a child of its foot");
        int kn = s->sk.parents[feet[i]];
        if (kn <= 0 || s->sk.parents[kn] <= 0) f.fail("a foot without a knee and a hip above it");
        s->feet[i] = feet[i];
        s->toes[i] = toes[i];
    }
    s->fps = f.array<double>("fps", F64, {1})[0];
    if (!(s->fps > 0 && std::isfinite(s->fps))) f.fail("fps is not a positive number");
    std::vector<uint64_t> shape;
    auto frames = f.array<int32_t>("trajectory.frames", I32, {-1}, &shape);
    for (int32_t k : frames) s->traj_times.push_back(double(k) / s->fps);
    auto sl = f.array<int32_t>("trajectory.slice", I32, {2});
    s->traj_start = sl[0];
    s->traj_stop = sl[1];
    s->feat_offset = f.array<float>("features.offset", F32, {-1}, &shape);
    const int F = int(shape[0]);
    s->feat_scale = f.array<float>("features.scale", F32, {F});
    if (s->traj_stop - s->traj_start != int(4 * frames.size()) || s->traj_start < 0 || s->traj_stop > F)
        f.fail("trajectory.slice does not hold 4 features per trajectory frame within the features");
    auto speeds = f.array<double>("speeds", F64, {4});
    for (int i = 0; i < 4; ++i) {
        if (!(speeds[i] > 0 && std::isfinite(speeds[i]))) f.fail("speeds must be positive numbers");
        s->speeds[i] = speeds[i];
    }
    s->accel_limit = f.array<double>("accel_limit", F64, {1})[0];
    if (!(s->accel_limit >= 0 && std::isfinite(s->accel_limit))) f.fail("accel_limit must be a number >= 0");
    s->styles = f.lines("styles");
    s->cfg.read(f);
    *F_out = F;
}

Database Database::load(const std::string& path) {
    ChunkFile f(path, MAGIC_DB, VERSION_DB);
    Database db;
    read_setup(f, &db.setup, &db.F);
    const int J = db.setup.sk.J, F = db.F;
    std::vector<uint64_t> shape;
    db.X = f.array<float>("features", F32, {-1, F}, &shape);
    db.N = int(shape[0]);
    const int N = db.N;
    if (N < 1) f.fail("the database has no frames");
    db.valid = f.array<uint8_t>("valid", U8, {N});
    db.ranges = f.array<int32_t>("clips.ranges", I32, {-1, 2}, &shape);
    db.C = int(shape[0]);
    db.clip_style = f.array<int32_t>("clips.style", I32, {db.C});
    db.root_speed = f.array<float>("root_speed", F32, {N});
    db.rot = f.array<float>("rotations", F32, {N, J, 4});
    db.pos = f.array<float>("positions", F32, {N, J, 3});
    db.vel = f.array<float>("velocities", F32, {N, J, 3});
    db.avel = f.array<float>("angular_velocities", F32, {N, J, 3});
    db.contacts = f.array<uint8_t>("contacts", U8, {N, 2});
    for (float x : db.X)
        if (!std::isfinite(x)) f.fail("features hold a non-finite value");
    db.frame_stop.assign(N, -1);
    int prev = 0;
    for (int c = 0; c < db.C; ++c) {
        int a = db.ranges[2 * c], b = db.ranges[2 * c + 1];
        if (a != prev || b <= a || b > N) f.fail("clips.ranges are not consecutive ranges covering the frames");
        if (db.clip_style[c] < -1 || db.clip_style[c] >= int(db.setup.styles.size()))
            f.fail("clips.style has an index out of the styles");
        for (int i = a; i < b; ++i) db.frame_stop[i] = b;
        prev = b;
    }
    if (prev != N) f.fail("clips.ranges do not cover every frame");
    bool any = false;
    for (uint8_t v : db.valid) any |= v != 0;
    if (!any) f.fail("no frame is matchable (valid)");
    return db;
}

// ------------------------------------------------------------------ search
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

static void boxes(const float* X, const uint8_t* valid, int N, int F, int size, std::vector<float>* out) {
    int nb = (N + size - 1) / size;
    out->assign(size_t(nb) * 2 * F, 0.f);
    for (int k = 0; k < nb; ++k)
        for (int f = 0; f < F; ++f) {
            (*out)[(size_t(k) * 2) * F + f] = std::numeric_limits<float>::infinity();
            (*out)[(size_t(k) * 2 + 1) * F + f] = -std::numeric_limits<float>::infinity();
        }
    for (int i = 0; i < N; ++i) {
        if (!valid[i]) continue;
        int k = i / size;
        float* lo = &(*out)[(size_t(k) * 2) * F];
        float* hi = lo + F;
        for (int f = 0; f < F; ++f) {
            float v = X[size_t(i) * F + f];
            lo[f] = std::min(lo[f], v);
            hi[f] = std::max(hi[f], v);
        }
    }
}

void AabbIndex::build(const float* X_, const uint8_t* valid, int N_, int F_) {
    X = X_; N = N_; F = F_;
    boxes(X, valid, N, F, SMALL, &b_sm);
    boxes(X, valid, N, F, LARGE, &b_lr);
}

void AabbIndex::block_any(const uint8_t* cand, int N, int size, std::vector<uint8_t>* out) {
    out->assign((N + size - 1) / size, 0);
    for (int i = 0; i < N; ++i)
        if (cand[i]) (*out)[i / size] = 1;
}

static inline float box_dist(const float* q, const float* lo, int F, float best) {
    float acc = 0.f;
    for (int f = 0; f < F; ++f) {
        float x = q[f];
        float t = std::max(std::max(lo[f] - x, x - lo[F + f]), 0.f);
        acc += t * t;
        if ((f & 7) == 7 && acc >= best) return acc;
    }
    return acc;
}

int AabbIndex::query(const float* q, const uint8_t* cand, const uint8_t* any_sm, const uint8_t* any_lr, int init,
                     float* cost) const {
    int best_i = -1;
    float best_d = std::numeric_limits<float>::infinity();
    if (init >= 0 && cand[init]) {
        best_i = init;
        best_d = sqdist_pairwise(X + size_t(init) * F, q, F);
    }
    const int per = LARGE / SMALL;
    const int n_sm = (N + SMALL - 1) / SMALL, n_lr = (N + LARGE - 1) / LARGE;
    for (int L = 0; L < n_lr; ++L) {
        if (!any_lr[L] || box_dist(q, &b_lr[size_t(L) * 2 * F], F, best_d) >= best_d) continue;
        for (int S = L * per; S < std::min(L * per + per, n_sm); ++S) {
            if (!any_sm[S] || box_dist(q, &b_sm[size_t(S) * 2 * F], F, best_d) >= best_d) continue;
            for (int i = S * SMALL; i < std::min(S * SMALL + SMALL, N); ++i) {
                if (!cand[i]) continue;
                float d = sqdist_pairwise(X + size_t(i) * F, q, F);
                if (d < best_d) {
                    best_d = d;
                    best_i = i;
                }
            }
        }
    }
    *cost = best_d;
    return best_i;
}

// ------------------------------------------------------------------ source
DatabaseSource::DatabaseSource(std::shared_ptr<const Database> db_) : db(std::move(db_)) {
    J = db->setup.sk.J;
    index.build(db->X.data(), db->valid.data(), db->N, db->F);
    const int S = int(db->setup.styles.size());
    cand.resize(S + 1);
    any_sm.resize(S + 1);
    any_lr.resize(S + 1);
    for (int s = -1; s < S; ++s) {
        std::vector<uint8_t>& c = cand[s + 1];
        c.assign(db->N, 0);
        for (int k = 0; k < db->C; ++k) {
            if (s >= 0 && db->clip_style[k] != s) continue;
            for (int i = db->ranges[2 * k]; i < db->ranges[2 * k + 1]; ++i) c[i] = db->valid[i];
        }
        AabbIndex::block_any(c.data(), db->N, AabbIndex::SMALL, &any_sm[s + 1]);
        AabbIndex::block_any(c.data(), db->N, AabbIndex::LARGE, &any_lr[s + 1]);
    }
}

void DatabaseSource::set_style(int style) { mask = style + 1; }

void DatabaseSource::reset() {
    // the slowest matchable frame of the style (np.argmin: the first of equal ones)
    const std::vector<uint8_t>& ok = cand[mask];
    float best = std::numeric_limits<float>::infinity();
    int f = 0;
    for (int i = 0; i < db->N; ++i)
        if (ok[i] && db->root_speed[i] < best) {
            best = db->root_speed[i];
            f = i;
        }
    cur = f;
}

bool DatabaseSource::search(const float* query, bool must_move, double margin, double* cost) {
    const std::vector<uint8_t>& ok = cand[mask];
    bool cur_ok = ok[cur] != 0;
    double cur_cost = cur_ok ? double(sqdist_pairwise(query, &db->X[size_t(cur) * db->F], db->F))
                             : std::numeric_limits<double>::infinity();
    float c = 0.f;
    int best = index.query(query, ok.data(), any_sm[mask].data(), any_lr[mask].data(), cur_ok ? cur : -1, &c);
    if (best < 0 || best == cur) {
        *cost = cur_cost;
        return false;
    }
    if (must_move || !cur_ok || double(c) < cur_cost - margin) {
        cur = best;
        *cost = double(c);
        return true;
    }
    *cost = cur_cost;
    return false;
}

}  // namespace anim
