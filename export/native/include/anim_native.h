/* The native runtime core's C API: one motion-matching (or learned motion
 * matching) character per handle, ticked with the stick state.
 *
 *   AnimController* c = NULL;
 *   if (anim_create_mm("locomotion-normal.animrt", &c) != ANIM_OK) puts(anim_last_error());
 *   AnimInput in = {0};  in.move_z = 1.0f;  in.style = -1;
 *   anim_step(c, &in, 1.0 / 60.0);
 *   anim_get_pose(c, rotations, positions, contacts);   // J x (w,x,y,z), J x 3, 2
 *   anim_destroy(c);
 *
 * Conventions are the Python engine's: metres, seconds, right-handed, +Y up,
 * character forward +Z, quaternions (w, x, y, z). Poses are LOCAL joint
 * rotations and positions (joint 0 is the root, in world space). Engine axes
 * are converted by anim_convert_unity / anim_convert_unreal, nowhere else.
 *
 * Every function returns ANIM_OK (0) or a negative error code; the message of
 * the last error on the calling thread is anim_last_error(). Creating loads
 * and checks the file(s) (magic, version, checksum, every array's type and
 * shape); a step, a reset and the getters allocate nothing.
 */
#ifndef ANIM_NATIVE_H
#define ANIM_NATIVE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(ANIM_NATIVE_BUILDING)
#    define ANIM_API __declspec(dllexport)
#  else
#    define ANIM_API __declspec(dllimport)
#  endif
#else
#  define ANIM_API __attribute__((visibility("default")))
#endif

enum {
    ANIM_OK = 0,
    ANIM_ERR_ARGUMENT = -1,   /* a NULL pointer, a bad index, a non-finite input or dt <= 0 */
    ANIM_ERR_IO = -2,         /* the file cannot be opened or read */
    ANIM_ERR_FORMAT = -3,     /* not this format: magic, version, size */
    ANIM_ERR_CHECKSUM = -4,   /* the payload's CRC-32 does not match: a corrupt file */
    ANIM_ERR_CONTENT = -5,    /* a missing chunk, a wrong type or shape, an inconsistent value */
    ANIM_ERR_MEMORY = -6
};

typedef struct AnimController AnimController;

/* One tick of input: the stick in WORLD axes (x, z; length <= 1, longer is
 * scaled down), an optional facing direction (strafing), run, and a style to
 * switch to (an index of anim_style_name; -1 keeps the current one). */
typedef struct AnimInput {
    float move_x, move_z;
    float facing_x, facing_z;
    int32_t has_facing;
    int32_t run;
    int32_t style;
} AnimInput;

/* What the last tick did (for parity tests, HUDs and debugging). */
typedef struct AnimTickInfo {
    int64_t frame;          /* motion matching: the database frame shown; learned: ticks since the last transition */
    int32_t searched;       /* 1: this tick searched */
    int32_t transitioned;   /* 1: the search took a new state (an inertialized transition) */
    double cost;            /* the search's cost (the taken state's, or the current one's) */
    double limiter_share;   /* the acceleration limiter's share of the candidate pose (1: untouched) */
    int32_t style;          /* the current style (-1: every style) */
    int32_t searches, transitions;   /* since the last reset */
} AnimTickInfo;

ANIM_API const char* anim_last_error(void);
ANIM_API const char* anim_version(void);

/* Motion matching over a runtime database (`anim export runtime-db`). */
ANIM_API int anim_create_mm(const char* runtime_db_path, AnimController** out);
/* Learned motion matching from an exported weights file (`anim export runtime-lmm`). */
ANIM_API int anim_create_lmm(const char* runtime_lmm_path, AnimController** out);
ANIM_API void anim_destroy(AnimController* c);

/* Start standing with the root at the origin facing +Z; anim_reset_at: at this root
 * position [3] (its height dropped) and rotation (w,x,y,z) [4] (a non-finite one: the origin). */
ANIM_API int anim_reset(AnimController* c);
ANIM_API int anim_reset_at(AnimController* c, const float* root_position, const float* root_rotation);
/* One tick. Input is sanitized as the Python engine's anim.control.InputGuard does:
 * a non-finite stick is no stick, a longer one is scaled to length 1, a non-finite
 * facing is the last good one, dt is bounded to [1e-4, 0.1] s (NaN: 1/60). Should a
 * pose still come out non-finite, the controller starts again at the last good pose.
 * Errors: a NULL argument, a style index out of range. */
ANIM_API int anim_step(AnimController* c, const AnimInput* input, double dt);
ANIM_API int anim_set_style(AnimController* c, int32_t style);   /* -1: every style */

ANIM_API int anim_num_joints(const AnimController* c);
ANIM_API const char* anim_joint_name(const AnimController* c, int joint);   /* NULL on a bad index */
ANIM_API int anim_joint_parent(const AnimController* c, int joint);        /* -1 root, < -1 error */
/* The index of the joint named `name` (exact match), or -1: how an engine maps its bones. */
ANIM_API int anim_joint_index(const AnimController* c, const char* name);
ANIM_API int anim_num_styles(const AnimController* c);
ANIM_API const char* anim_style_name(const AnimController* c, int style);

/* The pose shown after the last step (or reset): local rotations [J*4]
 * (w,x,y,z), local positions [J*3], foot contacts [2]; any pointer may be NULL. */
ANIM_API int anim_get_pose(const AnimController* c, float* rotations, float* positions, uint8_t* contacts);
/* Global (world) rotations [J*4] and positions [J*3] of that pose, by forward kinematics. */
ANIM_API int anim_get_global_pose(const AnimController* c, float* rotations, float* positions);
ANIM_API int anim_get_info(const AnimController* c, AnimTickInfo* info);

/* Axis conversion at the engine border (the one place each): n transforms,
 * positions [n*3] in metres (this engine: right-handed, +Y up, forward +Z)
 * and rotations [n*4] (w,x,y,z), written in place into out arrays as the
 * engine wants them: positions in its units and axes, rotations (x,y,z,w).
 *   Unity:  left-handed, +Y up, +Z forward, metres:   (x,y,z) -> (-x, y, z)
 *   Unreal: left-handed, +Z up, +X forward, centimetres: (x,y,z) -> 100 * (z, -x, y)
 * See export/native/FORMAT.md ("Engine axes") for the derivation. */
ANIM_API int anim_convert_unity(int n, const float* positions, const float* rotations,
                                float* out_positions, float* out_rotations);
ANIM_API int anim_convert_unreal(int n, const float* positions, const float* rotations,
                                 float* out_positions, float* out_rotations);
/* A stick (or facing) direction on the engine's ground, given in its axes, to
 * this engine's world (x, z) for AnimInput: the inverse of the maps above.
 *   Unity (x right, z forward):   (ux, uz) -> (-ux, uz)
 *   Unreal (X forward, Y right):  (X, Y)   -> (-Y, X)   (any units: a direction) */
ANIM_API int anim_stick_from_unity(float ux, float uz, float* out_x, float* out_z);
ANIM_API int anim_stick_from_unreal(float forward_x, float right_y, float* out_x, float* out_z);

#ifdef __cplusplus
}
#endif
#endif
