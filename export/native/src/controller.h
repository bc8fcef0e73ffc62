// The kinematic loop shared by motion matching and learned motion matching
// (controllers/motion_matching/controller.py: KinematicController) over a
// motion source: DatabaseSource (the runtime database, searched exactly) or
// LearnedSource (the three networks, learned.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anim_native.h"
#include "kernels.h"

namespace anim {

class ChunkFile;

// RuntimeConfig of controllers/motion_matching/runtime.py (read from the file: it is what Python ran with)
struct Config {
    double velocity_halflife = 0.1, rotation_halflife = 0.1, inertialize_halflife = 0.1, search_interval = 0.1;
    double force_search_velocity = 30.0, force_search_rotation = 30.0, transition_margin = 0.01;
    double adjust_halflife = 0.1, adjust_max_ratio = 0.5, adjust_velocity = 1.0, adjust_rotation_halflife = 0.2;
    double adjust_rotation_max_ratio = 2.0, clamp_distance = 0.1, clamp_angle = 1.5707963267948966;
    double foot_lock = 1.0, unlock_radius = 0.6, foot_halflife = 0.05, inertialize_accel = 30.0;
    void read(const ChunkFile& f);
};

// What the loop needs from a motion source (MotionSource in controller.py).
class Source {
public:
    virtual ~Source() = default;
    virtual void set_style(int style) = 0;            // -1: every style
    // false: the source ignores style requests (a learned model plays the one style it was trained on)
    virtual bool styles_switchable() const { return true; }
    virtual void reset() = 0;
    virtual const float* features() const = 0;        // [F] normalized features of the current state
    virtual bool at_end() const = 0;
    virtual bool search(const float* query, bool must_move, double margin, double* cost) = 0;
    virtual void advance(double dt) = 0;
    // the pose: float32 [J*4], [J*3], [J*3], [J*3], contacts [2]
    virtual const float* rot() const = 0;
    virtual const float* pos() const = 0;
    virtual const float* vel() const = 0;
    virtual const float* avel() const = 0;
    virtual const uint8_t* contacts() const = 0;
    virtual int64_t frame() const = 0;
    virtual int num_features() const = 0;
};

// Everything a controller is built from besides its source.
struct Setup {
    Skel sk;
    std::vector<std::string> names, styles;
    int32_t feet[2] = {0, 0}, toes[2] = {0, 0};
    std::vector<double> traj_times;       // trajectory frames / fps
    int traj_start = 0, traj_stop = 0;
    std::vector<float> feat_offset, feat_scale;
    std::vector<uint8_t> body;            // [J] 1: a body joint (its acceleration is limited), 0: a helper
    double speeds[4] = {0, 0, 0, 0};      // walk, run, side, back
    double accel_limit = 0.0, fps = 60.0;
    Config cfg;
};

class Controller {
public:
    Controller(Setup setup, std::unique_ptr<Source> source);
    void reset();
    // start at a root position (y is dropped) and rotation (normalized), as KinematicController.reset(pose)
    void reset_at(V3 root_pos, Q4 root_rot);
    // one tick; the input passes the guard first (anim.control.InputGuard: a non-finite stick is no
    // stick, a bad facing the last good one, dt bounded to [1e-4, 0.1], NaN dt the nominal 1/60)
    void step(const AnimInput& in, double dt);
    void set_style(int style);

    Setup s;
    std::unique_ptr<Source> src;
    int style = -1;
    // output of the last tick
    std::vector<float> out_rot, out_pos;
    uint8_t out_contacts[2] = {0, 0};
    AnimTickInfo info{};
    std::vector<Q4> global_rot;
    std::vector<V3> global_pos;

private:
    std::vector<double> levers;
    Inert inert;
    FootLocks locks;
    Limiter limiter;
    // simulation
    V3 sim_pos, sim_vel, sim_acc, sim_avel, desired_vel;
    Q4 sim_rot, desired_rot;
    double search_timer = 0.0;
    bool have_facing = false;             // the guard's last good facing
    double last_facing[2] = {0.0, 0.0};
    V3 good_root_pos;                     // the root of the last finite pose shown (recovery)
    Q4 good_root_rot;
    int recovered = 0;
    void tick(const AnimInput& in, double mx, double mz, bool has_facing, double fx, double fz, double dt);
    // scratch
    std::vector<V3> fut_pos;
    std::vector<Q4> fut_rot;
    std::vector<float> query;
    std::vector<Q4> work_rot, final_rot;
    std::vector<V3> work_pos, final_pos, final_g;
    void publish(const Q4* rot, const V3* pos, const uint8_t* contacts);
};

std::vector<double> upper_body_levers(const Skel& sk, const int32_t* feet, int nf);

}  // namespace anim
