#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace anim {

static inline V3 ld3(const float* p) { return V3{double(p[0]), double(p[1]), double(p[2])}; }
static inline Q4 ld4(const float* p) { return Q4{double(p[0]), double(p[1]), double(p[2]), double(p[3])}; }
static inline Q4 qscale(Q4 q, double s) { return {q.w * s, q.x * s, q.y * s, q.z * s}; }
static inline Q4 qadd(Q4 a, Q4 b) { return {a.w + b.w, a.x + b.x, a.y + b.y, a.z + b.z}; }

// ------------------------------------------------------------------ springs
void spring_position(V3 x, V3 v, V3 a, V3 v_goal, double halflife, double t, V3* x2, V3* v2, V3* a2) {
    double y = halflife_to_damping(halflife) / 2.0;
    V3 j0 = v - v_goal;
    V3 j1 = a + j0 * y;
    double eydt = std::exp(-y * t);
    *x2 = eydt * (((-j1) / (y * y)) + ((-j0 - j1 * t) / y)) + (j1 / (y * y)) + j0 / y + v_goal * t + x;
    *v2 = eydt * (j0 + j1 * t) + v_goal;
    *a2 = eydt * (a - j1 * y * t);
}

void spring_rotation(Q4 r, V3 w, Q4 r_goal, double halflife, double t, Q4* r2, V3* w2) {
    double y = halflife_to_damping(halflife) / 2.0;
    V3 j0 = to_scaled_angle_axis(qabs(mul(r, inv(r_goal))));
    V3 j1 = w + j0 * y;
    double eydt = std::exp(-y * t);
    *r2 = normalize(mul(from_scaled_angle_axis(eydt * (j0 + j1 * t)), r_goal));
    *w2 = eydt * (w - j1 * y * t);
}

double soft_limit(double x, double soft, double top) {
    if (x <= soft) return x;
    if (top - soft <= 1e-9) return top;
    return soft + (top - soft) * (1.0 - std::exp(-(x - soft) / (top - soft)));
}

double bounded_halflife(double x, double v, double accel) {
    if (x <= 1e-12 && v <= 1e-12) return 0.0;
    double y;
    if (x <= 1e-12) y = accel / (2.0 * v);
    else y = (-v + std::sqrt(v * v + x * accel)) / x;
    return 1.3862943611198906 / y;
}

void decay_spring(V3* x, V3* v, double halflife, double dt) {
    double y = halflife_to_damping(halflife) / 2.0;
    V3 j1 = *v + *x * y;
    double eydt = std::exp(-y * dt);
    V3 nx = eydt * (*x + j1 * dt), nv = eydt * (*v - j1 * y * dt);
    *x = nx;
    *v = nv;
}

void decay_spring(double* x, double* v, double halflife, double dt) {
    double y = halflife_to_damping(halflife) / 2.0;
    double j1 = *v + *x * y;
    double eydt = std::exp(-y * dt);
    double nx = eydt * (*x + j1 * dt), nv = eydt * (*v - j1 * y * dt);
    *x = nx;
    *v = nv;
}

// ------------------------------------------------------------- inertialization
void Inert::init(int J, double halflife_, const std::vector<double>& levers_, double accel_) {
    halflife = halflife_;
    accel = accel_;
    levers = levers_;
    halflives.assign(J, halflife);
    off_pos.assign(J, V3{}); off_vel.assign(J, V3{}); off_avel.assign(J, V3{});
    out_pos.assign(J, V3{}); out_vel.assign(J, V3{}); out_avel.assign(J, V3{});
    off_rot.assign(J, Q4{}); out_rot.assign(J, Q4{});
    clear();
}

void Inert::clear() {
    std::fill(halflives.begin(), halflives.end(), halflife);
    std::fill(off_pos.begin(), off_pos.end(), V3{}); std::fill(off_vel.begin(), off_vel.end(), V3{});
    std::fill(off_avel.begin(), off_avel.end(), V3{}); std::fill(out_pos.begin(), out_pos.end(), V3{});
    std::fill(out_vel.begin(), out_vel.end(), V3{}); std::fill(out_avel.begin(), out_avel.end(), V3{});
    std::fill(off_rot.begin(), off_rot.end(), Q4{}); std::fill(out_rot.begin(), out_rot.end(), Q4{});
    src_pos = dst_pos = V3{};
    src_rot = dst_rot = Q4{};
}

static void root_to_world(const float* rot0, const float* pos0, const float* vel0, const float* avel0, V3 src_pos,
                          Q4 src_rot, V3 dst_pos, Q4 dst_rot, Q4* wr, V3* wp, V3* wv, V3* ww) {
    Q4 r = mul(dst_rot, inv(src_rot));
    *wp = rot(r, ld3(pos0) - src_pos) + dst_pos;
    *wr = normalize(mul(r, ld4(rot0)));
    *wv = rot(r, ld3(vel0));
    *ww = rot(r, ld3(avel0));
}

void Inert::reset(const float* rot, const float* pos, const float* vel, const float* avel, V3 root_pos, Q4 root_rot) {
    clear();
    src_pos = ld3(pos);
    src_rot = ld4(rot);
    dst_pos = root_pos;
    dst_rot = root_rot;
    update(rot, pos, vel, avel, 0.0);
}

void Inert::transition(const float* rot, const float* pos, const float* vel, const float* avel) {
    dst_pos = out_pos[0];
    dst_rot = out_rot[0];
    src_pos = ld3(pos);
    src_rot = ld4(rot);
    Q4 wr; V3 wp, wv, ww;
    root_to_world(rot, pos, vel, avel, src_pos, src_rot, dst_pos, dst_rot, &wr, &wp, &wv, &ww);
    const int J = int(out_pos.size());
    for (int j = 0; j < J; ++j) {
        Q4 dq = j == 0 ? wr : ld4(rot + 4 * j);
        V3 dx = j == 0 ? wp : ld3(pos + 3 * j), dv = j == 0 ? wv : ld3(vel + 3 * j), dw = j == 0 ? ww : ld3(avel + 3 * j);
        off_pos[j] = out_pos[j] - dx;
        off_vel[j] = out_vel[j] - dv;
        off_rot[j] = qabs(mul(out_rot[j], inv(dq)));
        off_avel[j] = out_avel[j] - dw;
    }
    // offset_halflives
    std::fill(halflives.begin(), halflives.end(), halflife);
    if (accel <= 0.0) return;
    for (int j = 0; j < J; ++j) {
        if (levers[j] > 0.0)
            halflives[j] = std::max(halflife, bounded_halflife(levers[j] * length(to_scaled_angle_axis(off_rot[j])),
                                                               levers[j] * length(off_avel[j]), accel));
    }
}

void Inert::update(const float* rot, const float* pos, const float* vel, const float* avel, double dt) {
    Q4 wr; V3 wp, wv, ww;
    root_to_world(rot, pos, vel, avel, src_pos, src_rot, dst_pos, dst_rot, &wr, &wp, &wv, &ww);
    const int J = int(out_pos.size());
    for (int j = 0; j < J; ++j) {
        double y = halflife_to_damping(halflives[j]) / 2.0;
        double eydt = std::exp(-y * dt);
        Q4 iq = j == 0 ? wr : ld4(rot + 4 * j);
        V3 ix = j == 0 ? wp : ld3(pos + 3 * j), iv = j == 0 ? wv : ld3(vel + 3 * j), iw = j == 0 ? ww : ld3(avel + 3 * j);
        V3 j1 = off_vel[j] + off_pos[j] * y;
        off_pos[j] = eydt * (off_pos[j] + j1 * dt);
        off_vel[j] = eydt * (off_vel[j] - j1 * y * dt);
        V3 r0 = to_scaled_angle_axis(off_rot[j]);
        V3 r1 = off_avel[j] + r0 * y;
        off_rot[j] = from_scaled_angle_axis(eydt * (r0 + r1 * dt));
        off_avel[j] = eydt * (off_avel[j] - r1 * y * dt);
        out_pos[j] = ix + off_pos[j];
        out_vel[j] = iv + off_vel[j];
        out_rot[j] = normalize(mul(off_rot[j], iq));
        out_avel[j] = iw + off_avel[j];
    }
}

void Inert::adjust_root(V3 new_pos, Q4 new_rot) {
    V3 diff = new_pos - out_pos[0];
    out_pos[0] = out_pos[0] + diff;
    dst_pos = dst_pos + diff;
    src_pos = src_pos + rot(src_rot, inv_rot(dst_rot, out_pos[0] - off_pos[0] - dst_pos));
    dst_pos = out_pos[0];
    off_pos[0] = V3{};
    Q4 rdiff = normalize(mul(new_rot, inv(out_rot[0])));
    out_rot[0] = mul(rdiff, out_rot[0]);
    dst_rot = normalize(mul(rdiff, dst_rot));
}

void adjusted_root(V3 char_pos, Q4 char_rot, V3 char_vel, V3 sim_pos, Q4 sim_rot, V3 sim_vel, double halflife,
                   double max_ratio, double vel_share, double rot_halflife, double rot_max_ratio,
                   double clamp_distance, double clamp_angle, double dt, V3* out_pos, Q4* out_rot) {
    double frac = 1.0 - std::exp(-(0.69314718056 * dt) / (halflife + 1e-8));
    V3 step = (sim_pos - char_pos) * frac + (sim_vel - char_vel) * (vel_share * dt);
    double char_speed = length(char_vel);
    double limit = max_ratio * char_speed * dt;
    double n = length(step);
    if (n > limit) step = step * (limit / std::max(n, 1e-8));
    V3 pos = char_pos + step;
    V3 aa = to_scaled_angle_axis(mul(sim_rot, inv(char_rot)));
    aa = aa * (1.0 - std::exp(-(0.69314718056 * dt) / (rot_halflife + 1e-8)));
    double ang_limit = rot_max_ratio * char_speed * dt;
    double a = length(aa);
    if (a > ang_limit) aa = aa * (ang_limit / std::max(a, 1e-8));
    Q4 r = mul(from_scaled_angle_axis(aa), char_rot);
    V3 d = pos - sim_pos;
    double dn = length(d);
    double soft = CLAMP_SOFT * clamp_distance;
    if (dn > soft) pos = sim_pos + d * (soft_limit(dn, soft, clamp_distance) / dn);
    aa = to_scaled_angle_axis(mul(r, inv(sim_rot)));
    a = length(aa);
    if (a > clamp_angle) r = mul(from_scaled_angle_axis(aa * (clamp_angle / a)), sim_rot);
    *out_pos = pos;
    *out_rot = normalize(r);
}

// ------------------------------------------------------------------- FK and IK
void fk_chain(const Q4* lrot, const V3* lpos, const int32_t* parents, int end, Q4* grot, V3* gpos) {
    for (int j = 0; j <= end; ++j) {
        int p = parents[j];
        if (p < 0) {
            grot[j] = lrot[j];
            gpos[j] = lpos[j];
        } else {
            grot[j] = mul(grot[p], lrot[j]);
            gpos[j] = gpos[p] + rot(grot[p], lpos[j]);
        }
    }
}

void fk_all(const Skel& sk, const Q4* lrot, const V3* lpos, Q4* grot, V3* gpos) {
    fk_chain(lrot, lpos, sk.parents.data(), sk.J - 1, grot, gpos);
}

static inline double clamp1(double x) { return std::min(std::max(x, -1.0), 1.0); }

static double two_bone_ik_once(Q4* lrot, const V3* lpos, const int32_t* parents, int end, V3 target, V3 fwd,
                               double max_extension, Q4* grot, V3* gpos) {
    int b_i = parents[end];
    int a_i = parents[b_i];
    fk_chain(lrot, lpos, parents, end, grot, gpos);
    V3 a = gpos[a_i], b = gpos[b_i], c = gpos[end];
    double lab = length(b - a);
    double lcb = length(c - b);
    V3 t = target;
    double lat = length(t - a);
    lat = std::max(lat, std::abs(lab - lcb) + 1e-4);
    double top = max_extension * (lab + lcb);
    lat = soft_limit(lat, std::max(SOFT_IK * top, std::min(length(c - a), top)), top);
    V3 ac = unit(c - a);
    V3 ab = unit(b - a);
    double ac_ab_0 = std::acos(clamp1(dot3(ac, ab)));
    double ba_bc_0 = std::acos(clamp1(dot3(unit(a - b), unit(c - b))));
    double ac_at_0 = std::acos(clamp1(dot3(ac, unit(t - a))));
    double ac_ab_1 = std::acos(clamp1((lcb * lcb - lab * lab - lat * lat) / (-2.0 * lab * lat)));
    double ba_bc_1 = std::acos(clamp1((lat * lat - lab * lab - lcb * lcb) / (-2.0 * lab * lcb)));
    V3 axis0 = cross(c - a, b - a);
    V3 axis_f = cross(c - a, fwd);
    if (length(axis_f) < 1e-9) axis_f = axis0;
    double sin_ab = length(axis0) / std::max(length(c - a) * lab, 1e-9);
    double w = 0.0;
    if (length(axis0) < 1e-9 || dot3(axis0, axis_f) < 0.0) {
        axis0 = unit(axis_f);
    } else {
        w = std::min(sin_ab / BEND_PLANE_SIN, 1.0);
        axis0 = unit(w * unit(axis0) + (1.0 - w) * unit(axis_f));
    }
    V3 axis1 = cross(c - a, t - a);
    if (length(axis1) < 1e-9) axis1 = axis0;
    axis1 = unit(axis1);
    Q4 r0 = from_angle_axis(ac_ab_1 - ac_ab_0, inv_rot(grot[a_i], axis0));
    Q4 r1 = from_angle_axis(ba_bc_1 - ba_bc_0, inv_rot(grot[b_i], axis0));
    Q4 r2 = from_angle_axis(ac_at_0, inv_rot(grot[a_i], axis1));
    lrot[a_i] = normalize(mul(lrot[a_i], mul(r2, r0)));
    lrot[b_i] = normalize(mul(lrot[b_i], r1));
    return w;
}

void two_bone_ik(Q4* lrot, const V3* lpos, const int32_t* parents, int end, V3 target, V3 fwd, double max_extension,
                 Q4* grot, V3* gpos) {
    if (two_bone_ik_once(lrot, lpos, parents, end, target, fwd, max_extension, grot, gpos) < 1.0)
        two_bone_ik_once(lrot, lpos, parents, end, target, fwd, max_extension, grot, gpos);
}

// ------------------------------------------------------------------ foot locks
static double release_halflife(double distance) { return bounded_halflife(distance, 0.0, RELEASE_ACCEL); }

// Holden's contact_update with re-planting (kernels.foot_lock). v: the lock's 9 vectors.
static V3 foot_lock(int64_t* state, V3* v, V3 input_pos, bool input_contact, double unlock_radius, double halflife,
                    double dt, bool out_of_reach, double ground) {
    V3 &point = v[0], &target = v[1], &position = v[2], &velocity = v[3], &off_pos = v[4], &off_vel = v[5],
       &step = v[6], &shown_pos = v[7], &shown_vel = v[8];
    V3 input_vel = (input_pos - target) / (dt + 1e-8);
    target = input_pos;
    bool locked = state[1] == 1;
    bool release = locked && input_contact && (out_of_reach || length(point - input_pos) > unlock_radius);
    V3 zero{};
    bool caught_up = std::hypot(off_pos.x, off_pos.z) < REPLANT && std::abs(off_pos.y) < REPLANT;
    if (state[2] == 1 && caught_up && !input_contact) state[2] = 0;
    bool low = input_pos.y - ground <= LAND_HEIGHT;
    bool replant = state[2] == 1 && input_contact && caught_up && low;
    bool landing = state[0] == 0 && input_contact && state[2] == 0;
    if (landing && !low) {
        state[2] = 1;
        step.x = 0.0;
    } else if (landing || replant) {
        state[1] = 1;
        state[2] = 0;
        point = position;
        point.y = std::min(input_pos.y, ground);
        off_pos = position - point;
        if (std::hypot(velocity.x, velocity.z) > LAND_SPEED) off_vel = velocity;
        else off_vel = zero;
        step.y = std::max(halflife, release_halflife(std::abs(off_pos.y)));
    } else if ((locked && state[0] == 1 && !input_contact) || release) {
        state[1] = 0;
        state[2] = release ? 1 : 0;
        V3 prev_input = input_pos - input_vel * dt;
        if (release) {
            off_pos = shown_pos - prev_input;
            off_vel = shown_vel - input_vel;
        } else {
            off_pos = off_pos + point - prev_input;
            off_vel = off_vel - input_vel;
        }
        step.x = std::hypot(off_pos.x, off_pos.z);
        double base = halflife * (release ? STEP_HALFLIFE : 1.0);
        step.y = std::max(base, release_halflife(length(off_pos)));
    }
    V3 goal, goal_v;
    if (state[1] == 1) { goal = point; goal_v = zero; }
    else { goal = input_pos; goal_v = input_vel; }
    decay_spring(&off_pos, &off_vel, step.y > 0.0 ? step.y : halflife, dt);
    position = goal + off_pos;
    velocity = goal_v + off_vel;
    state[0] = input_contact ? 1 : 0;
    V3 out = position;
    if (state[2] == 1 && step.x > REPLANT) {
        double done = std::min(std::max(1.0 - (std::hypot(off_pos.x, off_pos.z) - REPLANT) / (step.x - REPLANT), 0.0), 1.0);
        out.y += std::min(STEP_LIFT0 * step.x, STEP_LIFT1) * std::sin(3.141592653589793 * done);
    }
    (void)shown_vel;
    return out;
}

static Q4 between(V3 a, V3 b) {
    a = unit(a);
    b = unit(b);
    V3 c = cross(a, b);
    double w = 1.0 + dot3(a, b);
    if (w < 1e-8) return Q4{};
    return normalize(Q4{w, c.x, c.y, c.z});
}

static void leg_to_lock(const V3* gpos, const int32_t* parents, int f, int t, const V3* v, V3* d, double* top,
                        double* own) {
    int kn = parents[f];
    int hip = parents[kn];
    *top = length(gpos[kn] - gpos[hip]) + length(gpos[f] - gpos[kn]);
    *d = v[0] + v[4] + gpos[f] - gpos[t] - gpos[hip];
    *own = length(gpos[f] - gpos[hip]);
}

static double pelvis_drop_need(V3 d, double top) {
    double reach = SOFT_IK * top;
    double h2 = d.x * d.x + d.z * d.z;
    if (d.y >= 0.0 || d.y * d.y + h2 <= reach * reach) return 0.0;
    if (h2 >= reach * reach) return PELVIS_DROP;
    return std::min(std::max(-d.y - std::sqrt(reach * reach - h2), 0.0), PELVIS_DROP);
}

void FootLocks::init(const Skel& sk, const int32_t* feet_, const int32_t* toes_, int nf_, double halflife_,
                     double unlock_radius_) {
    nf = nf_;
    feet.assign(feet_, feet_ + nf);
    toes.assign(toes_, toes_ + nf);
    halflife = halflife_;
    unlock_radius = unlock_radius_;
    state.assign(3 * nf, 0);
    vec.assign(9 * nf, V3{});
    int pel = -2;
    bool one = true;
    for (int i = 0; i < nf; ++i) {
        int p = sk.parents[sk.parents[sk.parents[feet[i]]]];
        if (pel == -2) pel = p;
        else if (p != pel) one = false;
    }
    pelvis[0] = (one && nf > 0) ? double(pel) : -1.0;
    pelvis[1] = pelvis[2] = 0.0;
    grot.assign(sk.J, Q4{}); sgrot.assign(sk.J, Q4{});
    gpos.assign(sk.J, V3{}); sgpos.assign(sk.J, V3{});
    anim_toe.assign(nf, V3{});
    ground.assign(nf, 0.0);
}

void FootLocks::reset(const Skel& sk, const Q4* rot, const V3* pos, const uint8_t* contacts) {
    fk_all(sk, rot, pos, grot.data(), gpos.data());
    std::fill(state.begin(), state.end(), 0);
    std::fill(vec.begin(), vec.end(), V3{});
    pelvis[1] = pelvis[2] = 0.0;
    for (int i = 0; i < nf; ++i) {
        int c = contacts[i] ? 1 : 0;
        state[3 * i] = c; state[3 * i + 1] = c; state[3 * i + 2] = 0;
        V3 g = gpos[toes[i]];
        vec[9 * i] = g; vec[9 * i + 1] = g; vec[9 * i + 2] = g; vec[9 * i + 7] = g;
    }
}

void FootLocks::apply(const Skel& sk, Q4* out, V3* pos, const uint8_t* contacts, double dt, V3 fwd,
                      const float* src_rot, const float* src_pos) {
    const int32_t* parents = sk.parents.data();
    double goal_drop = 0.0;
    bool have_grot = false;
    for (int i = 0; i < nf; ++i) {
        ground[i] = std::numeric_limits<double>::infinity();
        if (contacts[i] && state[3 * i + 1] == 0) {
            for (int j = 0; j <= toes[i]; ++j) {   // the clip's pose, as float64
                sgrot[j] = ld4(src_rot + 4 * j);
                sgpos[j] = ld3(src_pos + 3 * j);
            }
            // fk_chain on the clip's local pose (in place is fine: parents come first)
            for (int j = 0; j <= toes[i]; ++j) {
                int p = parents[j];
                if (p >= 0) {
                    sgpos[j] = sgpos[p] + rot(sgrot[p], sgpos[j]);
                    sgrot[j] = mul(sgrot[p], sgrot[j]);
                }
            }
            ground[i] = sgpos[toes[i]].y;
        }
        fk_chain(out, pos, parents, toes[i], grot.data(), gpos.data());
        have_grot = true;
        anim_toe[i] = gpos[toes[i]];
        if (state[3 * i + 1] == 1) {
            V3 d; double top, own;
            leg_to_lock(gpos.data(), parents, feet[i], toes[i], &vec[9 * i], &d, &top, &own);
            goal_drop = std::max(goal_drop, pelvis_drop_need(d, top));
        }
    }
    int pj = int(pelvis[0]);
    if (pj >= 0) {
        double x = pelvis[1] - goal_drop, v = pelvis[2];
        decay_spring(&x, &v, halflife, dt);
        pelvis[1] = x + goal_drop;
        pelvis[2] = v;
        if (goal_drop == 0.0 && pelvis[1] < 1e-5 && std::abs(pelvis[2]) < 1e-3) {
            pelvis[1] = 0.0;
            pelvis[2] = 0.0;
        }
        V3 down{0.0, -pelvis[1], 0.0};
        int pp = parents[pj];
        if (pp >= 0 && have_grot) down = inv_rot(grot[pp], down);
        pos[pj] = pos[pj] + down;
    }
    for (int i = 0; i < nf; ++i) {
        int f = feet[i], t = toes[i];
        fk_chain(out, pos, parents, t, grot.data(), gpos.data());
        V3* v = &vec[9 * i];
        bool far = false;
        if (state[3 * i + 1] == 1) {
            V3 d; double top, own;
            leg_to_lock(gpos.data(), parents, f, t, v, &d, &top, &own);
            far = length(d) > std::max(own, SOFT_IK * top) + REACH_SLACK;
        }
        V3 goal = foot_lock(&state[3 * i], v, anim_toe[i], contacts[i] != 0, unlock_radius, halflife, dt, far,
                            ground[i]);
        if (length(goal - gpos[t]) > 1e-4) {
            two_bone_ik(out, pos, parents, f, gpos[f] + (goal - gpos[t]), fwd, 0.999, grot.data(), gpos.data());
            fk_chain(out, pos, parents, t, grot.data(), gpos.data());
            Q4 r = between(gpos[t] - gpos[f], goal - gpos[f]);
            int p = parents[f];
            out[f] = normalize(mul(inv(grot[p]), mul(r, grot[f])));
            fk_chain(out, pos, parents, t, grot.data(), gpos.data());
        }
        v[8] = (gpos[t] - v[7]) / (dt + 1e-8);
        v[7] = gpos[t];
    }
}

// ------------------------------------------------------------ acceleration limit
void Limiter::init(int J, double limit_, const std::vector<uint8_t>& body_, int iters_) {
    limit = limit_;
    iters = iters_;
    body = body_;
    rot0.assign(J, Q4{}); rot1.assign(J, Q4{}); ext_rot.assign(J, Q4{}); grot.assign(J, Q4{}); crot.assign(J, Q4{});
    pos0.assign(J, V3{}); pos1.assign(J, V3{}); g0.assign(J, V3{}); g1.assign(J, V3{}); ext_pos.assign(J, V3{});
    cand_g.assign(J, V3{}); cand_g_new.assign(J, V3{}); cpos.assign(J, V3{});
}

void Limiter::reset(const Skel& sk, const Q4* rot, const V3* pos) {
    fk_all(sk, rot, pos, grot.data(), g0.data());
    for (int j = 0; j < sk.J; ++j) {
        rot0[j] = rot1[j] = rot[j];
        pos0[j] = pos1[j] = pos[j];
        g1[j] = g0[j];
        cand_g[j] = g0[j];
    }
    frames = limited = drift_bound = 0;
    drift = 0.0;
    share = 1.0;
}

static void blend_fk(const Skel& sk, const Q4* ext_rot, const V3* ext_pos, const Q4* cand_rot, const V3* cand_pos,
                     double s, Q4* out_rot, V3* out_pos, Q4* grot, V3* gpos) {
    for (int j = 0; j < sk.J; ++j) {
        Q4 a = ext_rot[j], b = cand_rot[j];
        double d = a.w * b.w + a.x * b.x + a.y * b.y + a.z * b.z;
        if (s >= 1.0) {
            out_rot[j] = b;
            out_pos[j] = cand_pos[j];
        } else {
            double sg = d >= 0.0 ? 1.0 : -1.0;
            out_rot[j] = normalize(qadd(qscale(a, 1.0 - s), qscale(b, s * sg)));
            out_pos[j] = (1.0 - s) * ext_pos[j] + s * cand_pos[j];
        }
        int p = sk.parents[j];
        if (p < 0) {
            grot[j] = out_rot[j];
            gpos[j] = out_pos[j];
        } else {
            grot[j] = mul(grot[p], out_rot[j]);
            gpos[j] = gpos[p] + rot(grot[p], out_pos[j]);
        }
    }
}

static double largest_second_difference(int J, const V3* g, const V3* g1, const V3* g2, const uint8_t* body) {
    double m = 0.0;
    for (int j = 0; j < J; ++j) {
        if (!body[j]) continue;
        double x = g[j].x - 2.0 * g1[j].x + g2[j].x;
        double y = g[j].y - 2.0 * g1[j].y + g2[j].y;
        double z = g[j].z - 2.0 * g1[j].z + g2[j].z;
        m = std::max(m, x * x + y * y + z * z);
    }
    return std::sqrt(m);
}

void Limiter::apply(const Skel& sk, const Q4* cand_rot, const V3* cand_pos, double dt, Q4* out_rot, V3* out_pos,
                    V3* g) {
    const int J = sk.J;
    double s = 1.0;
    if (limit > 0.0) {
        double lim = limit * (1.0 - MARGIN) * dt * dt;
        for (int j = 0; j < J; ++j) {
            // (s - 2 (s - 1))-style extrapolation: rot1 * inv(rot2) * rot1 (rot0 here is the previous frame)
            ext_rot[j] = normalize(mul(rot0[j], mul(inv(rot1[j]), rot0[j])));
            ext_pos[j] = 2.0 * pos0[j] - pos1[j];
        }
        auto eval = [&](double share_) {
            blend_fk(sk, ext_rot.data(), ext_pos.data(), cand_rot, cand_pos, share_, out_rot, out_pos, grot.data(), g);
            return largest_second_difference(J, g, g0.data(), g1.data(), body.data());
        };
        if (eval(1.0) <= lim) {
            s = 1.0;
        } else if (eval(0.0) > lim) {
            double a = 0.0, b = 1.0;
            double r = 0.5 * (std::sqrt(5.0) - 1.0);
            for (int it = 0; it < 2 * iters; ++it) {
                double c = b - r * (b - a), d = a + r * (b - a);
                double fc = eval(c);
                if (fc <= eval(d)) b = d;
                else a = c;
            }
            s = 0.5 * (a + b);
            eval(s);
        } else {
            double lo = 0.0, hi = 1.0;
            for (int it = 0; it < iters; ++it) {
                double mid = 0.5 * (lo + hi);
                if (eval(mid) <= lim) lo = mid;
                else hi = mid;
            }
            s = lo;
            eval(lo);
        }
        // the drift bound (kernels.bound_drift): never carry a joint further than max(max_drift, the
        // last frame's drift, the candidate's own jump) from where the candidate puts it
        bool have_cand = false;
        if (s < 1.0 && max_drift > 0.0) {
            fk_all(sk, cand_rot, cand_pos, grot.data(), cand_g_new.data());
            have_cand = true;
            double jump2 = 0.0;
            for (int j = 0; j < J; ++j) {
                V3 d = cand_g_new[j] - cand_g[j];
                jump2 = std::max(jump2, std::sqrt(d.x * d.x + d.y * d.y + d.z * d.z));
            }
            double prev = std::max(drift, jump2);
            // the candidate's global positions as _blend_fk computes them (s = 1)
            blend_fk(sk, ext_rot.data(), ext_pos.data(), cand_rot, cand_pos, 1.0, crot.data(), cpos.data(), grot.data(),
                     cand_g.data());
            auto largest_distance = [&]() {
                double m = 0.0;
                for (int j = 0; j < J; ++j) {
                    double d = (g[j].x - cand_g[j].x) * (g[j].x - cand_g[j].x) +
                               (g[j].y - cand_g[j].y) * (g[j].y - cand_g[j].y) +
                               (g[j].z - cand_g[j].z) * (g[j].z - cand_g[j].z);
                    if (d > m) m = d;
                }
                return std::sqrt(m);
            };
            double md = std::max(max_drift, prev);
            blend_fk(sk, ext_rot.data(), ext_pos.data(), cand_rot, cand_pos, s, out_rot, out_pos, grot.data(), g);
            double d = largest_distance();
            double s2 = s;
            if (d <= md) {
                drift = d;
            } else {
                double lo = s, hi = 1.0;
                for (int it = 0; it < iters; ++it) {
                    double mid = 0.5 * (lo + hi);
                    blend_fk(sk, ext_rot.data(), ext_pos.data(), cand_rot, cand_pos, mid, out_rot, out_pos, grot.data(), g);
                    if (largest_distance() <= md) hi = mid;
                    else lo = mid;
                }
                blend_fk(sk, ext_rot.data(), ext_pos.data(), cand_rot, cand_pos, hi, out_rot, out_pos, grot.data(), g);
                s2 = hi;
                drift = largest_distance();
            }
            drift_bound += s2 > s ? 1 : 0;
            s = s2;
        } else if (s >= 1.0) {
            drift = 0.0;
        }
        // the candidate's globals for the next frame's jump (quat.fk of it), or the shown pose's
        if (have_cand) std::copy(cand_g_new.begin(), cand_g_new.end(), cand_g.begin());
        else std::copy(g, g + J, cand_g.begin());
    } else {
        for (int j = 0; j < J; ++j) { out_rot[j] = cand_rot[j]; out_pos[j] = cand_pos[j]; }
        fk_all(sk, out_rot, out_pos, grot.data(), g);
    }
    frames += 1;
    limited += s < 1.0 ? 1 : 0;
    share = s;
    for (int j = 0; j < J; ++j) {
        rot1[j] = rot0[j]; pos1[j] = pos0[j]; g1[j] = g0[j];
        rot0[j] = out_rot[j]; pos0[j] = out_pos[j]; g0[j] = g[j];
    }
}

}  // namespace anim
