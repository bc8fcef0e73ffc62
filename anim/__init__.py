"""anim: the core library of the character animation engine.

Quaternions and transforms (`anim.quat`), the data model (`anim.skeleton`),
BVH input and output (`anim.bvh`), kinematics (`anim.kinematics`), the motion
database (`anim.database`) and its search indexes (`anim.search`).

Importing `anim` is light: no torch, jax, mujoco or pygame at module level.
"""

__version__ = "0.1.0"
