// The per-tick runtime pieces shared by motion matching and learned motion
// matching: controllers/motion_matching/kernels.py in C++, one function per
// Python kernel, same names, same order of floating-point operations.
// Scratch arrays are passed in (sized once at creation): nothing here allocates.
#pragma once
#include <cstdint>
#include <vector>

#include "quat.h"

namespace anim {

// ---- constants of kernels.py
constexpr double CLAMP_SOFT = 0.5, SOFT_IK = 0.97, REACH_SLACK = 0.015, REPLANT = 0.015;
constexpr double STEP_LIFT0 = 0.3, STEP_LIFT1 = 0.05, STEP_HALFLIFE = 2.0, BEND_PLANE_SIN = 0.1;
constexpr double PELVIS_DROP = 0.05, RELEASE_ACCEL = 60.0, LAND_HEIGHT = 0.03, LAND_SPEED = 1.5;

struct Skel {
    int J = 0;
    std::vector<int32_t> parents;
    std::vector<V3> offsets;
};

// ---- springs and trajectory
void spring_position(V3 x, V3 v, V3 a, V3 v_goal, double halflife, double t, V3* x2, V3* v2, V3* a2);
void spring_rotation(Q4 r, V3 w, Q4 r_goal, double halflife, double t, Q4* r2, V3* w2);
double soft_limit(double x, double soft, double top);
double bounded_halflife(double x, double v, double accel);
void decay_spring(V3* x, V3* v, double halflife, double dt);
void decay_spring(double* x, double* v, double halflife, double dt);

// ---- inertialization (arrays of J)
struct Inert {
    double halflife = 0.1, accel = 0.0;
    std::vector<double> levers, halflives;
    std::vector<V3> off_pos, off_vel, off_avel, out_pos, out_vel, out_avel;
    std::vector<Q4> off_rot, out_rot;
    V3 src_pos, dst_pos;
    Q4 src_rot, dst_rot;
    void init(int J, double halflife_, const std::vector<double>& levers_, double accel_);
    void clear();
    // animation pose as float32 arrays [J*4], [J*3] (the database's or the decoder's)
    void reset(const float* rot, const float* pos, const float* vel, const float* avel, V3 root_pos, Q4 root_rot);
    void transition(const float* rot, const float* pos, const float* vel, const float* avel);
    void update(const float* rot, const float* pos, const float* vel, const float* avel, double dt);
    void adjust_root(V3 new_pos, Q4 new_rot);
};

void adjusted_root(V3 char_pos, Q4 char_rot, V3 char_vel, V3 sim_pos, Q4 sim_rot, V3 sim_vel, double halflife,
                   double max_ratio, double vel_share, double rot_halflife, double rot_max_ratio,
                   double clamp_distance, double clamp_angle, double dt, V3* out_pos, Q4* out_rot);

// ---- forward kinematics, IK, foot locks, acceleration limit
void fk_chain(const Q4* lrot, const V3* lpos, const int32_t* parents, int end, Q4* grot, V3* gpos);
void two_bone_ik(Q4* lrot, const V3* lpos, const int32_t* parents, int end, V3 target, V3 fwd,
                 double max_extension, Q4* grot, V3* gpos);

struct FootLocks {
    int nf = 0;
    std::vector<int32_t> feet, toes;
    double halflife = 0.05, unlock_radius = 0.6;
    std::vector<int64_t> state;      // [nf*3]: in contact, locked, stepping
    std::vector<V3> vec;             // [nf*9]: point, target, position, velocity, off_pos, off_vel, step, shown pos, shown vel
    double pelvis[3] = {-1, 0, 0};   // joint, drop, drop velocity
    // scratch
    std::vector<Q4> grot, sgrot;
    std::vector<V3> gpos, sgpos, anim_toe;
    std::vector<double> ground;
    void init(const Skel& sk, const int32_t* feet, const int32_t* toes, int nf, double halflife, double unlock_radius);
    void reset(const Skel& sk, const Q4* rot, const V3* pos, const uint8_t* contacts);
    bool stepping(int i) const { return state[3 * i + 2] == 1; }
    // in place on out/pos (float64 local pose); src_rot/src_pos: the clip's pose (float32)
    void apply(const Skel& sk, Q4* out, V3* pos, const uint8_t* contacts, double dt, V3 fwd, const float* src_rot,
               const float* src_pos);
};

struct Limiter {
    double limit = 0.0;
    int iters = 12;
    double max_drift = 0.15;         // AccelerationLimiter.MAX_DRIFT (m)
    std::vector<uint8_t> body;       // [J] 1: the joint's acceleration counts (not a helper joint)
    std::vector<Q4> rot0, rot1, ext_rot, grot, crot;
    std::vector<V3> pos0, pos1, g0, g1, ext_pos, cand_g, cand_g_new, cpos;
    double drift = 0.0;
    int64_t frames = 0, limited = 0, drift_bound = 0;
    double share = 1.0;
    static constexpr double MARGIN = 5e-3;
    void init(int J, double limit, const std::vector<uint8_t>& body, int iters = 12);
    void reset(const Skel& sk, const Q4* rot, const V3* pos);
    // cand -> out (may alias: cand is read before out is written only through ext; out must not alias cand)
    void apply(const Skel& sk, const Q4* cand_rot, const V3* cand_pos, double dt, Q4* out_rot, V3* out_pos, V3* gpos);
};

void fk_all(const Skel& sk, const Q4* lrot, const V3* lpos, Q4* grot, V3* gpos);

}  // namespace anim
