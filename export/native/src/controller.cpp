#include "controller.h"

#include <algorithm>
#include <cmath>

#include "chunks.h"

namespace anim {

void Config::read(const ChunkFile& f) {
    auto names = f.lines("config.names");
    auto values = f.array<double>("config.values", F64, {int64_t(names.size())});
    std::map<std::string, double> m;
    for (size_t i = 0; i < names.size(); ++i) m[names[i]] = values[i];
    auto get = [&](const char* k, double* dst) {
        auto it = m.find(k);
        if (it == m.end()) f.fail(std::string("config has no '") + k + "'");
        if (!std::isfinite(it->second)) f.fail(std::string("config '") + k + "' is not finite");
        *dst = it->second;
    };
    get("velocity_halflife", &velocity_halflife); get("rotation_halflife", &rotation_halflife);
    get("inertialize_halflife", &inertialize_halflife); get("search_interval", &search_interval);
    get("force_search_velocity", &force_search_velocity); get("force_search_rotation", &force_search_rotation);
    get("transition_margin", &transition_margin); get("adjust_halflife", &adjust_halflife);
    get("adjust_max_ratio", &adjust_max_ratio); get("adjust_velocity", &adjust_velocity);
    get("adjust_rotation_halflife", &adjust_rotation_halflife);
    get("adjust_rotation_max_ratio", &adjust_rotation_max_ratio); get("clamp_distance", &clamp_distance);
    get("clamp_angle", &clamp_angle); get("foot_lock", &foot_lock); get("unlock_radius", &unlock_radius);
    get("foot_halflife", &foot_halflife); get("inertialize_accel", &inertialize_accel);
}

std::vector<double> upper_body_levers(const Skel& sk, const int32_t* feet, int nf) {
    const int J = sk.J;
    std::vector<double> bone(J), lever(J, 0.0);
    for (int j = 0; j < J; ++j) bone[j] = length(sk.offsets[j]);
    for (int j = J - 1; j > 0; --j) {
        int p = sk.parents[j];
        if (p >= 0) lever[p] = std::max(lever[p], lever[j] + bone[j]);
    }
    std::vector<char> leg(J, 0), below(J, 0);
    for (int i = 0; i < nf; ++i)
        for (int j = feet[i]; j >= 0; j = sk.parents[j]) leg[j] = 1;
    for (int i = 0; i < nf; ++i) below[feet[i]] = 1;
    for (int j = 0; j < J; ++j)
        if (sk.parents[j] >= 0 && below[sk.parents[j]]) below[j] = 1;
    for (int j = 0; j < J; ++j)
        if (leg[j] || below[j]) lever[j] = 0.0;
    return lever;
}

Controller::Controller(Setup setup, std::unique_ptr<Source> source) : s(std::move(setup)), src(std::move(source)) {
    const int J = s.sk.J;
    out_rot.assign(4 * J, 0.f);
    out_pos.assign(3 * J, 0.f);
    global_rot.assign(J, Q4{});
    global_pos.assign(J, V3{});
    levers = upper_body_levers(s.sk, s.feet, 2);
    inert.init(J, s.cfg.inertialize_halflife, levers, s.cfg.inertialize_accel);
    locks.init(s.sk, s.feet, s.toes, 2, s.cfg.foot_halflife, s.cfg.unlock_radius);
    limiter.init(J, s.accel_limit, s.body);
    fut_pos.assign(s.traj_times.size(), V3{});
    fut_rot.assign(s.traj_times.size(), Q4{});
    query.assign(src->num_features(), 0.f);
    work_rot.assign(J, Q4{}); final_rot.assign(J, Q4{});
    work_pos.assign(J, V3{}); final_pos.assign(J, V3{}); final_g.assign(J, V3{});
    // a learned source plays the one style it was trained on (controllers.learned: LearnedSource.style)
    set_style(!src->styles_switchable() && s.styles.size() == 1 ? 0 : -1);
    reset();
}

void Controller::set_style(int st) {
    src->set_style(st);
    style = st;
}

void Controller::publish(const Q4* rot, const V3* pos, const uint8_t* contacts) {
    const int J = s.sk.J;
    for (int j = 0; j < J; ++j) {
        out_rot[4 * j] = float(rot[j].w); out_rot[4 * j + 1] = float(rot[j].x);
        out_rot[4 * j + 2] = float(rot[j].y); out_rot[4 * j + 3] = float(rot[j].z);
        out_pos[3 * j] = float(pos[j].x); out_pos[3 * j + 1] = float(pos[j].y); out_pos[3 * j + 2] = float(pos[j].z);
    }
    out_contacts[0] = contacts[0];
    out_contacts[1] = contacts[1];
    fk_all(s.sk, rot, pos, global_rot.data(), global_pos.data());
    info.frame = src->frame();
    info.style = style;
}

void Controller::reset() { reset_at(V3{}, Q4{}); }

void Controller::reset_at(V3 root_pos, Q4 root_rot) {
    root_pos.y = 0.0;
    double n = std::sqrt(root_rot.w * root_rot.w + root_rot.x * root_rot.x + root_rot.y * root_rot.y +
                         root_rot.z * root_rot.z);
    root_rot = Q4{root_rot.w / n, root_rot.x / n, root_rot.y / n, root_rot.z / n};
    src->reset();
    inert.reset(src->rot(), src->pos(), src->vel(), src->avel(), root_pos, root_rot);
    sim_pos = root_pos; sim_vel = sim_acc = sim_avel = V3{};
    sim_rot = root_rot;
    desired_rot = root_rot;
    desired_vel = V3{};
    search_timer = 0.0;
    locks.reset(s.sk, inert.out_rot.data(), inert.out_pos.data(), src->contacts());
    limiter.reset(s.sk, inert.out_rot.data(), inert.out_pos.data());
    info = AnimTickInfo{};
    info.limiter_share = 1.0;
    recovered = 0;
    publish(inert.out_rot.data(), inert.out_pos.data(), src->contacts());
    good_root_pos = V3{out_pos[0], out_pos[1], out_pos[2]};
    good_root_rot = Q4{out_rot[0], out_rot[1], out_rot[2], out_rot[3]};
}

void Controller::step(const AnimInput& in, double dt) {
    // the guard (anim.control.InputGuard, clamp_dt)
    if (!std::isfinite(dt)) dt = 1.0 / 60.0;
    dt = std::min(std::max(dt, 1e-4), 0.1);
    double mx = double(in.move_x), mz = double(in.move_z);
    if (!std::isfinite(mx) || !std::isfinite(mz)) mx = mz = 0.0;
    double n = std::hypot(mx, mz);
    if (n > 1.0) { mx = mx / n; mz = mz / n; }
    bool has_facing = false;
    double fx = 0.0, fz = 0.0;
    if (in.has_facing) {
        double x = double(in.facing_x), z = double(in.facing_z);
        if (std::isfinite(x) && std::isfinite(z)) {
            double m = std::hypot(x, z);
            if (m > 1.0) { x = x / m; z = z / m; }
            last_facing[0] = x;
            last_facing[1] = z;
            have_facing = true;
        }
        if (have_facing) {
            has_facing = true;
            fx = last_facing[0];
            fz = last_facing[1];
        }
    }
    tick(in, mx, mz, has_facing, fx, fz, dt);
    // a pose that came out non-finite: start again at the last good pose (KinematicController.step)
    bool finite = true;
    for (float v : out_rot) finite = finite && std::isfinite(v);
    for (float v : out_pos) finite = finite && std::isfinite(v);
    if (finite) {
        good_root_pos = V3{out_pos[0], out_pos[1], out_pos[2]};
        good_root_rot = Q4{out_rot[0], out_rot[1], out_rot[2], out_rot[3]};
        return;
    }
    int r = recovered + 1;
    reset_at(good_root_pos, good_root_rot);
    recovered = r;
}

void Controller::tick(const AnimInput& in, double mx, double mz, bool has_facing, double fx, double fz, double dt) {
    const Config& cfg = s.cfg;
    if (in.style >= 0 && in.style != style && src->styles_switchable()) {
        set_style(in.style);
        search_timer = 0.0;
    }
    // 1. desired velocity and facing from the input
    double fwd = in.run ? s.speeds[1] : s.speeds[0];
    double side = s.speeds[2], back = s.speeds[3];
    if (in.run) {
        side = std::max(side, 0.5 * fwd);
        back = std::max(back, 0.5 * fwd);
    }
    double n = std::hypot(mx, mz);
    if (n > 1.0) { mx = mx / n; mz = mz / n; }
    V3 local = inv_rot(sim_rot, V3{mx, 0.0, mz});
    local = local * V3{side, 0.0, local.z > 0 ? fwd : back};
    V3 v_goal = rot(sim_rot, local);
    Q4 r_goal = desired_rot;
    if (has_facing) {
        if (!(std::hypot(fx, fz) < 1e-2)) r_goal = from_angle_axis(std::atan2(fx, fz), V3{0.0, 1.0, 0.0});
    } else if (!(std::hypot(mx, mz) < 1e-2)) {
        r_goal = from_angle_axis(std::atan2(mx, mz), V3{0.0, 1.0, 0.0});
    }
    double dv = length(v_goal - desired_vel) / dt;
    double dr = length(to_scaled_angle_axis(mul(r_goal, inv(desired_rot)))) / dt;
    bool force = dv > cfg.force_search_velocity || dr > cfg.force_search_rotation;
    desired_vel = v_goal;
    desired_rot = r_goal;

    // 2. trajectory prediction and search
    for (size_t i = 0; i < s.traj_times.size(); ++i) {
        V3 x, v, a;
        spring_position(sim_pos, sim_vel, sim_acc, v_goal, cfg.velocity_halflife, s.traj_times[i], &x, &v, &a);
        Q4 r; V3 w;
        spring_rotation(sim_rot, sim_avel, r_goal, cfg.rotation_halflife, s.traj_times[i], &r, &w);
        fut_pos[i] = x;
        fut_rot[i] = r;
    }
    bool end = src->at_end();
    search_timer -= dt;
    info.searched = 0;
    info.transitioned = 0;
    if (force || end || search_timer <= 0.0) {
        const int F = src->num_features();
        const float* f = src->features();
        std::copy(f, f + F, query.begin());
        const size_t K = s.traj_times.size();
        V3 root_pos = inert.out_pos[0];
        Q4 root_rot = inert.out_rot[0];
        for (size_t i = 0; i < K; ++i) {
            V3 p = inv_rot(root_rot, fut_pos[i] - root_pos);
            V3 d = inv_rot(root_rot, rot(fut_rot[i], V3{0.0, 0.0, 1.0}));
            double raw[4] = {p.x, p.z, d.x, d.z};
            size_t idx[4] = {2 * i, 2 * i + 1, 2 * K + 2 * i, 2 * K + 2 * i + 1};
            for (int k = 0; k < 4; ++k) {
                size_t c = size_t(s.traj_start) + idx[k];
                query[c] = float((raw[k] - double(s.feat_offset[c])) / double(s.feat_scale[c]));
            }
        }
        double cost = 0.0;
        bool moved = src->search(query.data(), end, cfg.transition_margin, &cost);
        info.searched = 1;
        info.searches += 1;
        info.cost = cost;
        if (moved) {
            info.transitioned = 1;
            info.transitions += 1;
            inert.transition(src->rot(), src->pos(), src->vel(), src->avel());
        }
        search_timer = cfg.search_interval;
    }

    // 3. play on, inertialized
    src->advance(dt);
    inert.update(src->rot(), src->pos(), src->vel(), src->avel(), dt);

    // 4. simulation, and the character root pulled toward it
    {
        V3 x, v, a;
        spring_position(sim_pos, sim_vel, sim_acc, v_goal, cfg.velocity_halflife, dt, &x, &v, &a);
        sim_pos = x; sim_vel = v; sim_acc = a;
        Q4 r; V3 w;
        spring_rotation(sim_rot, sim_avel, r_goal, cfg.rotation_halflife, dt, &r, &w);
        sim_rot = r; sim_avel = w;
    }
    V3 new_pos;
    Q4 new_rot;
    adjusted_root(inert.out_pos[0], inert.out_rot[0], inert.out_vel[0], sim_pos, sim_rot, sim_vel,
                  cfg.adjust_halflife, cfg.adjust_max_ratio, cfg.adjust_velocity, cfg.adjust_rotation_halflife,
                  cfg.adjust_rotation_max_ratio, cfg.clamp_distance, cfg.clamp_angle, dt, &new_pos, &new_rot);
    inert.adjust_root(new_pos, new_rot);

    // 5. foot locking
    const int J = s.sk.J;
    std::copy(inert.out_rot.begin(), inert.out_rot.end(), work_rot.begin());
    std::copy(inert.out_pos.begin(), inert.out_pos.end(), work_pos.begin());
    uint8_t contacts[2] = {src->contacts()[0], src->contacts()[1]};
    if (cfg.foot_lock != 0.0) {
        V3 fwd = rot(work_rot[0], V3{0.0, 0.0, 1.0});
        locks.apply(s.sk, work_rot.data(), work_pos.data(), contacts, dt, fwd, src->rot(), src->pos());
        for (int i = 0; i < 2; ++i) contacts[i] = contacts[i] && !locks.stepping(i);
    }
    // 6. no joint accelerates harder than the data's p99.9
    limiter.apply(s.sk, work_rot.data(), work_pos.data(), dt, final_rot.data(), final_pos.data(), final_g.data());
    info.limiter_share = limiter.share;
    (void)J;
    publish(final_rot.data(), final_pos.data(), contacts);
}

}  // namespace anim
