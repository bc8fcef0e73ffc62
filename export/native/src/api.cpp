// The C API (include/anim_native.h) over anim::Controller.
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "anim_native.h"
#include "chunks.h"
#include "controller.h"
#include "database.h"
#include "learned.h"

struct AnimController {
    std::unique_ptr<anim::Controller> c;
};

static thread_local std::string g_error;

static int fail(int code, const std::string& msg) {
    g_error = msg;
    return code;
}

template <class F>
static int guarded(F&& f) {
    try {
        return f();
    } catch (const anim::Error& e) {
        return fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
        return fail(ANIM_ERR_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(ANIM_ERR_CONTENT, e.what());
    }
}

extern "C" {

const char* anim_last_error(void) { return g_error.c_str(); }
const char* anim_version(void) { return "anim-native 1 (runtime-db format 1, runtime-lmm format 1)"; }

int anim_create_mm(const char* path, AnimController** out) {
    if (!path || !out) return fail(ANIM_ERR_ARGUMENT, "anim_create_mm: NULL argument");
    *out = nullptr;
    return guarded([&] {
        auto db = anim::Database::shared(path);
        anim::Setup setup = db->setup;
        auto h = new AnimController;
        h->c.reset(new anim::Controller(setup, std::unique_ptr<anim::Source>(new anim::DatabaseSource(db))));
        *out = h;
        return ANIM_OK;
    });
}

int anim_create_lmm(const char* path, AnimController** out) {
    if (!path || !out) return fail(ANIM_ERR_ARGUMENT, "anim_create_lmm: NULL argument");
    *out = nullptr;
    return guarded([&] {
        anim::Setup setup;
        auto src = anim::LearnedSource::load(path, &setup);
        auto h = new AnimController;
        h->c.reset(new anim::Controller(setup, std::move(src)));
        *out = h;
        return ANIM_OK;
    });
}

void anim_destroy(AnimController* c) { delete c; }

int anim_reset(AnimController* c) {
    if (!c) return fail(ANIM_ERR_ARGUMENT, "anim_reset: NULL controller");
    c->c->reset();
    return ANIM_OK;
}

int anim_step(AnimController* c, const AnimInput* in, double dt) {
    if (!c || !in) return fail(ANIM_ERR_ARGUMENT, "anim_step: NULL argument");
    if (in->style < -1 || in->style >= int(c->c->s.styles.size()))
        return fail(ANIM_ERR_ARGUMENT, "anim_step: style " + std::to_string(in->style) + " out of range (-1 keeps; " +
                                           std::to_string(c->c->s.styles.size()) + " styles)");
    c->c->step(*in, dt);
    return ANIM_OK;
}

int anim_reset_at(AnimController* c, const float* root_position, const float* root_rotation) {
    if (!c || !root_position || !root_rotation) return fail(ANIM_ERR_ARGUMENT, "anim_reset_at: NULL argument");
    anim::V3 p{root_position[0], root_position[1], root_position[2]};
    anim::Q4 q{root_rotation[0], root_rotation[1], root_rotation[2], root_rotation[3]};
    double n = q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z;
    if (!std::isfinite(p.x) || !std::isfinite(p.z) || !std::isfinite(n) || n < 1e-12) c->c->reset();
    else c->c->reset_at(p, q);
    return ANIM_OK;
}

int anim_set_style(AnimController* c, int32_t style) {
    if (!c) return fail(ANIM_ERR_ARGUMENT, "anim_set_style: NULL controller");
    if (style < -1 || style >= int(c->c->s.styles.size()))
        return fail(ANIM_ERR_ARGUMENT, "anim_set_style: style " + std::to_string(style) + " out of range");
    c->c->set_style(style);
    return ANIM_OK;
}

int anim_num_joints(const AnimController* c) {
    if (!c) return fail(ANIM_ERR_ARGUMENT, "anim_num_joints: NULL controller");
    return c->c->s.sk.J;
}

const char* anim_joint_name(const AnimController* c, int j) {
    if (!c || j < 0 || j >= c->c->s.sk.J) {
        fail(ANIM_ERR_ARGUMENT, "anim_joint_name: bad controller or joint index");
        return nullptr;
    }
    return c->c->s.names[j].c_str();
}

int anim_joint_parent(const AnimController* c, int j) {
    if (!c || j < 0 || j >= c->c->s.sk.J) return fail(ANIM_ERR_ARGUMENT, "anim_joint_parent: bad controller or joint index");
    return c->c->s.sk.parents[j];
}

int anim_joint_index(const AnimController* c, const char* name) {
    if (!c || !name) return fail(ANIM_ERR_ARGUMENT, "anim_joint_index: NULL argument");
    const auto& names = c->c->s.names;
    for (size_t j = 0; j < names.size(); ++j)
        if (names[j] == name) return int(j);
    return -1;
}

int anim_num_styles(const AnimController* c) {
    if (!c) return fail(ANIM_ERR_ARGUMENT, "anim_num_styles: NULL controller");
    return int(c->c->s.styles.size());
}

const char* anim_style_name(const AnimController* c, int s) {
    if (!c || s < 0 || s >= int(c->c->s.styles.size())) {
        fail(ANIM_ERR_ARGUMENT, "anim_style_name: bad controller or style index");
        return nullptr;
    }
    return c->c->s.styles[s].c_str();
}

int anim_get_pose(const AnimController* c, float* rotations, float* positions, uint8_t* contacts) {
    if (!c) return fail(ANIM_ERR_ARGUMENT, "anim_get_pose: NULL controller");
    const int J = c->c->s.sk.J;
    if (rotations) std::memcpy(rotations, c->c->out_rot.data(), sizeof(float) * 4 * J);
    if (positions) std::memcpy(positions, c->c->out_pos.data(), sizeof(float) * 3 * J);
    if (contacts) { contacts[0] = c->c->out_contacts[0]; contacts[1] = c->c->out_contacts[1]; }
    return ANIM_OK;
}

int anim_get_global_pose(const AnimController* c, float* rotations, float* positions) {
    if (!c) return fail(ANIM_ERR_ARGUMENT, "anim_get_global_pose: NULL controller");
    const int J = c->c->s.sk.J;
    for (int j = 0; j < J; ++j) {
        const anim::Q4& q = c->c->global_rot[j];
        const anim::V3& p = c->c->global_pos[j];
        if (rotations) { rotations[4 * j] = float(q.w); rotations[4 * j + 1] = float(q.x); rotations[4 * j + 2] = float(q.y); rotations[4 * j + 3] = float(q.z); }
        if (positions) { positions[3 * j] = float(p.x); positions[3 * j + 1] = float(p.y); positions[3 * j + 2] = float(p.z); }
    }
    return ANIM_OK;
}

int anim_get_info(const AnimController* c, AnimTickInfo* info) {
    if (!c || !info) return fail(ANIM_ERR_ARGUMENT, "anim_get_info: NULL argument");
    *info = c->c->info;
    return ANIM_OK;
}

// ---- engine axes: the one place each (FORMAT.md, "Engine axes")
// Both engines are left-handed, so each map is a reflection M (det -1): a
// position p goes to M p, and a rotation R to M R M^T, whose quaternion has
// the same w and the axis -M (x, y, z) (an axis is a pseudo-vector: it picks
// up det M = -1).
int anim_convert_unity(int n, const float* pos, const float* rot, float* out_pos, float* out_rot) {
    if (n < 0 || (n > 0 && ((pos && !out_pos) || (rot && !out_rot))))
        return fail(ANIM_ERR_ARGUMENT, "anim_convert_unity: bad count or NULL output");
    for (int i = 0; i < n; ++i) {
        // M = diag(-1, 1, 1): this engine's +X is the character's left, Unity's +X its right
        if (pos) {
            float x = pos[3 * i], y = pos[3 * i + 1], z = pos[3 * i + 2];
            out_pos[3 * i] = -x; out_pos[3 * i + 1] = y; out_pos[3 * i + 2] = z;
        }
        if (rot) {
            float w = rot[4 * i], x = rot[4 * i + 1], y = rot[4 * i + 2], z = rot[4 * i + 3];
            // -M (x, y, z) = (x, -y, -z); Unity stores (x, y, z, w)
            out_rot[4 * i] = x; out_rot[4 * i + 1] = -y; out_rot[4 * i + 2] = -z; out_rot[4 * i + 3] = w;
        }
    }
    return ANIM_OK;
}

int anim_convert_unreal(int n, const float* pos, const float* rot, float* out_pos, float* out_rot) {
    if (n < 0 || (n > 0 && ((pos && !out_pos) || (rot && !out_rot))))
        return fail(ANIM_ERR_ARGUMENT, "anim_convert_unreal: bad count or NULL output");
    for (int i = 0; i < n; ++i) {
        // M: Unreal X (forward) = our Z, Unreal Y (right) = -our X (left), Unreal Z (up) = our Y; metres -> cm
        if (pos) {
            float x = pos[3 * i], y = pos[3 * i + 1], z = pos[3 * i + 2];
            out_pos[3 * i] = 100.0f * z; out_pos[3 * i + 1] = -100.0f * x; out_pos[3 * i + 2] = 100.0f * y;
        }
        if (rot) {
            float w = rot[4 * i], x = rot[4 * i + 1], y = rot[4 * i + 2], z = rot[4 * i + 3];
            // -M (x, y, z) = (-z, x, -y); FQuat stores (X, Y, Z, W)
            out_rot[4 * i] = -z; out_rot[4 * i + 1] = x; out_rot[4 * i + 2] = -y; out_rot[4 * i + 3] = w;
        }
    }
    return ANIM_OK;
}

int anim_stick_from_unity(float ux, float uz, float* out_x, float* out_z) {
    if (!out_x || !out_z) return fail(ANIM_ERR_ARGUMENT, "anim_stick_from_unity: NULL output");
    *out_x = -ux;     // M^T = M = diag(-1, 1, 1)
    *out_z = uz;
    return ANIM_OK;
}

int anim_stick_from_unreal(float forward_x, float right_y, float* out_x, float* out_z) {
    if (!out_x || !out_z) return fail(ANIM_ERR_ARGUMENT, "anim_stick_from_unreal: NULL output");
    *out_x = -right_y;   // M^T: our x (left) = -Unreal Y (right), our z (forward) = Unreal X (forward)
    *out_z = forward_x;
    return ANIM_OK;
}

}  // extern "C"
