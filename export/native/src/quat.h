// Quaternion and vector helpers over doubles: the formulas of anim/quat_nb.py,
// written in the same order of operations so that the native tick rounds as
// the Python one does. Quaternions are (w, x, y, z); mul(a, b) applies b first.
#pragma once
#include <cmath>

namespace anim {

struct V3 { double x = 0, y = 0, z = 0; };
struct Q4 { double w = 1, x = 0, y = 0, z = 0; };

inline V3 v3(double x, double y, double z) { return V3{x, y, z}; }
inline V3 operator+(V3 a, V3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
inline V3 operator-(V3 a, V3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline V3 operator-(V3 a) { return {-a.x, -a.y, -a.z}; }
inline V3 operator*(V3 a, double s) { return {a.x * s, a.y * s, a.z * s}; }
inline V3 operator*(double s, V3 a) { return {s * a.x, s * a.y, s * a.z}; }
inline V3 operator*(V3 a, V3 b) { return {a.x * b.x, a.y * b.y, a.z * b.z}; }
inline V3 operator/(V3 a, double s) { return {a.x / s, a.y / s, a.z / s}; }

inline double dot3(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline V3 cross(V3 a, V3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
inline double length(V3 v) { return std::sqrt(dot3(v, v)); }
inline V3 unit(V3 v) { double n = length(v); return n > 1e-12 ? v / n : v * 0.0; }

inline Q4 mul(Q4 a, Q4 b) {
    return {a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
            a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
            a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
            a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w};
}
inline Q4 inv(Q4 q) { return {q.w, -q.x, -q.y, -q.z}; }
inline Q4 normalize(Q4 q) {
    double n = std::sqrt(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z);
    if (n < 1e-12) return Q4{};
    return {q.w / n, q.x / n, q.y / n, q.z / n};
}
inline Q4 qabs(Q4 q) { return q.w < 0.0 ? Q4{-q.w, -q.x, -q.y, -q.z} : q; }
inline V3 rot(Q4 q, V3 v) {
    V3 u{q.x, q.y, q.z};
    V3 t = 2.0 * cross(u, v);
    return v + q.w * t + cross(u, t);
}
inline V3 inv_rot(Q4 q, V3 v) { return rot(inv(q), v); }

inline Q4 qexp(V3 v) {
    double half = length(v);
    if (half < 1e-8) return normalize(Q4{1.0, v.x, v.y, v.z});
    double s = std::sin(half) / half;
    return {std::cos(half), v.x * s, v.y * s, v.z * s};
}
inline V3 qlog(Q4 q) {
    double n = std::sqrt(q.x * q.x + q.y * q.y + q.z * q.z);
    if (n < 1e-8 && q.w > 0.0) return V3{q.x, q.y, q.z} / q.w;
    if (n == 0.0) return V3{};
    double half = std::atan2(n, q.w);
    return V3{q.x, q.y, q.z} * (half / n);
}
inline V3 to_scaled_angle_axis(Q4 q) { return 2.0 * qlog(qabs(q)); }
inline Q4 from_scaled_angle_axis(V3 v) { return qexp(v * 0.5); }
inline Q4 from_angle_axis(double angle, V3 axis) {
    V3 a = unit(axis);
    double s = std::sin(0.5 * angle);
    return {std::cos(0.5 * angle), a.x * s, a.y * s, a.z * s};
}
inline double halflife_to_damping(double halflife) { return (4.0 * 0.69314718056) / (halflife + 1e-5); }

}  // namespace anim
