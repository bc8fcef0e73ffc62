#include "database.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include <sys/stat.h>

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
    s->body = f.array<uint8_t>("skeleton.body", U8, {J});
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
    if (F > 128) f.fail("more than 128 features");
    db.axes.fit(db.X.data(), db.valid.data(), N, F);
    const int S = int(db.setup.styles.size());
    db.cand.resize(S + 1);
    for (int s = -1; s < S; ++s) {
        std::vector<uint8_t>& c = db.cand[s + 1];
        c.assign(N, 0);
        for (int k = 0; k < db.C; ++k) {
            if (s >= 0 && db.clip_style[k] != s) continue;
            for (int i = db.ranges[2 * k]; i < db.ranges[2 * k + 1]; ++i) c[i] = db.valid[i];
        }
    }
    return db;
}

std::shared_ptr<const Database> Database::shared(const std::string& path) {
    static std::mutex lock;
    static std::map<std::string, std::weak_ptr<const Database>> cache;
    struct stat st;
    std::string key = path;
    if (::stat(path.c_str(), &st) == 0)
        key += "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtime) + "|" + std::to_string(st.st_ino);
    std::lock_guard<std::mutex> g(lock);
    auto it = cache.find(key);
    if (it != cache.end())
        if (auto db = it->second.lock()) return db;
    auto db = std::make_shared<Database>(load(path));
    // the trees point into the object's own arrays: built once it is in place
    db->trees.resize(db->cand.size());
    for (size_t s = 0; s < db->cand.size(); ++s)
        db->trees[s].build(db->X.data(), db->cand[s].data(), db->N, db->F, &db->axes);
    cache[key] = db;
    return db;
}

// ------------------------------------------------------------------ source
DatabaseSource::DatabaseSource(std::shared_ptr<const Database> db_) : db(std::move(db_)) { J = db->setup.sk.J; }

void DatabaseSource::set_style(int style) { mask = style + 1; }

void DatabaseSource::reset() {
    // the slowest matchable frame of the style (np.argmin: the first of equal ones)
    const std::vector<uint8_t>& ok = db->cand[mask];
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
    const std::vector<uint8_t>& ok = db->cand[mask];
    bool cur_ok = ok[cur] != 0;
    double cur_cost = cur_ok ? double(sqdist_pairwise(query, &db->X[size_t(cur) * db->F], db->F))
                             : std::numeric_limits<double>::infinity();
    float c = 0.f;
    int best = db->trees[mask].query(query, cur_ok ? cur : -1, &c);
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
