#include "learned.h"

#include <algorithm>
#include <cmath>

#include "chunks.h"
#include "kdtree.h"

namespace anim {

void read_setup(const ChunkFile& f, Setup* s, int* F_out);   // database.cpp

static const char MAGIC_LMM[8] = {'A', 'N', 'I', 'M', 'R', 'T', 'L', 'M'};
static const uint32_t VERSION_LMM = 1;

void Mlp::read(const ChunkFile& f, const std::string& name) {
    int layers = f.array<int32_t>(name + ".layers", I32, {1})[0];
    if (layers < 1 || layers > 16) f.fail(name + " has " + std::to_string(layers) + " layers");
    std::vector<uint64_t> shape;
    sizes.clear();
    W.clear();
    b.clear();
    for (int l = 0; l < layers; ++l) {
        W.push_back(f.array<float>(name + ".W" + std::to_string(l), F32,
                                   {l == 0 ? -1 : int64_t(sizes.back()), -1}, &shape));
        if (l == 0) sizes.push_back(int(shape[0]));
        sizes.push_back(int(shape[1]));
        b.push_back(f.array<float>(name + ".b" + std::to_string(l), F32, {int64_t(shape[1])}));
    }
    n_in = sizes.front();
    n_out = sizes.back();
    mean_in = f.array<float>(name + ".mean_in", F32, {n_in});
    std_in = f.array<float>(name + ".std_in", F32, {n_in});
    mean_out = f.array<float>(name + ".mean_out", F32, {n_out});
    std_out = f.array<float>(name + ".std_out", F32, {n_out});
    int widest = *std::max_element(sizes.begin(), sizes.end());
    h0.assign(widest, 0.f);
    h1.assign(widest, 0.f);
    for (auto* v : {&mean_in, &std_in, &mean_out, &std_out})
        for (float x : *v)
            if (!std::isfinite(x)) f.fail(name + " holds a non-finite normalization value");
    for (auto& m : W)
        for (float x : m)
            if (!std::isfinite(x)) f.fail(name + " holds a non-finite weight");
}

// o[k] += sum_i h[i] W[i, k], each o[k] summed over i in order. Vectorized across k,
// so every instruction set gives the same bits (no fused multiply-add: the library
// builds with -ffp-contract=off); on x86-64 with GCC/Clang a clone per instruction
// set is picked at load time (AVX-512, AVX2, else the portable SSE2 build).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void matvec_add(const float* h, const float* w, int a, int c, float* o) {
    for (int i = 0; i < a; ++i) {
        const float hi = h[i];
        const float* row = w + size_t(i) * c;
        for (int k = 0; k < c; ++k) o[k] += hi * row[k];
    }
}

// y = mlp((x - mean_in) / std_in) * std_out + mean_out, ELU between layers (weights.mlp)
void Mlp::eval(const float* x, float* out) const {
    float* h = h0.data();
    float* g = h1.data();
    for (int i = 0; i < n_in; ++i) h[i] = (x[i] - mean_in[i]) / std_in[i];
    const int L = int(W.size());
    for (int l = 0; l < L; ++l) {
        const int a = sizes[l], c = sizes[l + 1];
        const float* w = W[l].data();
        float* o = l == L - 1 ? out : g;
        for (int k = 0; k < c; ++k) o[k] = 0.f;
        matvec_add(h, w, a, c, o);
        const float* bias = b[l].data();
        for (int k = 0; k < c; ++k) o[k] += bias[k];
        if (l < L - 1) {
            for (int k = 0; k < c; ++k) {
                float v = o[k];
                o[k] = std::max(v, 0.f) + std::expm1(std::min(v, 0.f));
            }
            std::swap(h, g);
        }
    }
    for (int k = 0; k < n_out; ++k) out[k] = out[k] * std_out[k] + mean_out[k];
}

std::unique_ptr<Source> LearnedSource::load(const std::string& path, Setup* setup) {
    ChunkFile f(path, MAGIC_LMM, VERSION_LMM);
    std::unique_ptr<LearnedSource> s(new LearnedSource);
    read_setup(f, setup, &s->nf);
    s->J = setup->sk.J;
    s->fps = setup->fps;
    s->dec.read(f, "decompressor");
    s->stepper.read(f, "stepper");
    s->projector.read(f, "projector");
    s->ns = s->stepper.n_in;
    s->moving = f.array<int32_t>("lmm.moving", I32, {-1});
    for (int32_t j : s->moving)
        if (j < 1 || j >= s->J) f.fail("lmm.moving holds a joint index out of range");
    s->num_contacts = f.array<int32_t>("lmm.num_contacts", I32, {1})[0];
    if (s->num_contacts != 2) f.fail("lmm.num_contacts must be 2 (left and right foot)");
    s->rest = f.array<float>("lmm.rest_positions", F32, {s->J, 3});
    s->init_state = f.array<float>("lmm.init_state", F32, {s->ns});
    s->lo = f.array<float>("lmm.state_min", F32, {s->ns});
    s->hi = f.array<float>("lmm.state_max", F32, {s->ns});
    const int m = int(s->moving.size());
    const int pose = 6 * m + 9 * (s->J - 1) + 6 + s->num_contacts;
    if (s->ns <= s->nf || s->dec.n_in != s->ns || s->stepper.n_out != s->ns || s->projector.n_in != s->nf ||
        s->projector.n_out != s->ns || s->dec.n_out != pose)
        f.fail("the networks' sizes do not fit the features (" + std::to_string(s->nf) + "), the state (" +
               std::to_string(s->ns) + ") and the pose vector (" + std::to_string(pose) + ")");
    s->state.assign(s->ns, 0.f);
    s->proj.assign(s->ns, 0.f);
    s->d.assign(s->ns, 0.f);
    s->y.assign(pose, 0.f);
    s->rot_.assign(4 * s->J, 0.f);
    s->pos_.assign(3 * s->J, 0.f);
    s->vel_.assign(3 * s->J, 0.f);
    s->avel_.assign(3 * s->J, 0.f);
    s->reset();
    return std::unique_ptr<Source>(s.release());
}

// kernels.quat_from_columns: the rotation whose matrix has first columns c0, c1 (Gram-Schmidt)
static Q4 quat_from_columns(V3 c0, V3 c1) {
    double n0 = std::sqrt(c0.x * c0.x + c0.y * c0.y + c0.z * c0.z) + 1e-30;
    V3 a = c0 / n0;
    double d = a.x * c1.x + a.y * c1.y + a.z * c1.z;
    V3 b = c1 - d * a;
    b = b / (std::sqrt(b.x * b.x + b.y * b.y + b.z * b.z) + 1e-30);
    V3 c = cross(a, b);
    double m00 = a.x, m10 = a.y, m20 = a.z, m01 = b.x, m11 = b.y, m21 = b.z, m02 = c.x, m12 = c.y, m22 = c.z;
    double tr = m00 + m11 + m22;
    Q4 out;
    if (tr >= m00 && tr >= m11 && tr >= m22) out = {1.0 + tr, m21 - m12, m02 - m20, m10 - m01};
    else if (m00 >= m11 && m00 >= m22) out = {m21 - m12, 1.0 + m00 - m11 - m22, m01 + m10, m02 + m20};
    else if (m11 >= m22) out = {m02 - m20, m01 + m10, 1.0 - m00 + m11 - m22, m12 + m21};
    else out = {m10 - m01, m02 + m20, m12 + m21, 1.0 - m00 - m11 + m22};
    out = normalize(out);
    return out.w < 0.0 ? Q4{-out.w, -out.x, -out.y, -out.z} : out;
}

void LearnedSource::decode(double dt, double hysteresis) {
    dec.eval(state.data(), y.data());
    const int m = int(moving.size());
    int o = 0;
    for (int j = 0; j < J; ++j)
        for (int k = 0; k < 3; ++k) { pos_[3 * j + k] = rest[3 * j + k]; vel_[3 * j + k] = 0.f; }
    for (int i = 0; i < m; ++i)
        for (int k = 0; k < 3; ++k) pos_[3 * moving[i] + k] = y[o + 3 * i + k];
    o += 3 * m;
    for (int j = 1; j < J; ++j) {
        int b = o + 6 * (j - 1);
        Q4 r = quat_from_columns(V3{double(y[b]), double(y[b + 1]), double(y[b + 2])},
                                 V3{double(y[b + 3]), double(y[b + 4]), double(y[b + 5])});
        rot_[4 * j] = float(r.w); rot_[4 * j + 1] = float(r.x); rot_[4 * j + 2] = float(r.y); rot_[4 * j + 3] = float(r.z);
    }
    o += 6 * (J - 1);
    for (int i = 0; i < m; ++i)
        for (int k = 0; k < 3; ++k) vel_[3 * moving[i] + k] = y[o + 3 * i + k];
    o += 3 * m;
    for (int j = 1; j < J; ++j)
        for (int k = 0; k < 3; ++k) avel_[3 * j + k] = y[o + 3 * (j - 1) + k];
    o += 3 * (J - 1);
    V3 rv{double(y[o]), 0.0, double(y[o + 2])};
    V3 ra{0.0, double(y[o + 4]), 0.0};
    o += 6;
    for (int c = 0; c < num_contacts; ++c) {
        double v = double(y[o + c]);
        contacts_[c] = contacts_[c] ? (v > 0.5 - hysteresis) : (v > 0.5 + hysteresis);
    }
    V3 wv = anim::rot(root_rot, rv);
    wv.y = 0.0;
    V3 wa = anim::rot(root_rot, ra);
    wa.x = 0.0;
    wa.z = 0.0;
    V3 new_pos = root_pos + dt * wv;
    new_pos.y = 0.0;
    Q4 new_rot = normalize(mul(from_scaled_angle_axis(wa * dt), root_rot));
    pos_[0] = float(new_pos.x); pos_[1] = float(new_pos.y); pos_[2] = float(new_pos.z);
    vel_[0] = float(wv.x); vel_[1] = float(wv.y); vel_[2] = float(wv.z);
    avel_[0] = float(wa.x); avel_[1] = float(wa.y); avel_[2] = float(wa.z);
    rot_[0] = float(new_rot.w); rot_[1] = float(new_rot.x); rot_[2] = float(new_rot.y); rot_[3] = float(new_rot.z);
    root_pos = new_pos;
    root_rot = new_rot;
}

void LearnedSource::reset() {
    std::copy(init_state.begin(), init_state.end(), state.begin());
    root_pos = V3{};
    root_rot = Q4{};
    ticks = 0;
    contacts_[0] = contacts_[1] = 0;
    decode(0.0, 0.0);
}

void LearnedSource::step_state(double dt) {
    stepper.eval(state.data(), d.data());
    const float fdt = float(dt);
    for (int i = 0; i < ns; ++i) state[i] = std::min(std::max(state[i] + fdt * d[i], lo[i]), hi[i]);
}

bool LearnedSource::search(const float* query, bool must_move, double margin, double* cost) {
    double cur_cost = double(sqdist_pairwise(query, state.data(), nf));
    projector.eval(query, proj.data());
    double c = double(sqdist_pairwise(query, proj.data(), nf));
    if (must_move || c < cur_cost - margin) {
        std::copy(proj.begin(), proj.end(), state.begin());
        step_state(1.0 / fps);
        decode(0.0, contact_hysteresis);
        ticks = 0;
        *cost = c;
        return true;
    }
    *cost = cur_cost;
    return false;
}

void LearnedSource::advance(double dt) {
    step_state(dt);
    ticks += 1;
    decode(dt, contact_hysteresis);
}

}  // namespace anim
