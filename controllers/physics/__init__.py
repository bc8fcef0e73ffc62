"""Physics tracking: a MuJoCo humanoid built from the skeleton, tracking
database clips with a PPO policy trained in MJX and run in C MuJoCo.

    humanoid.py  MJCF from a Skeleton + corpus statistics (de Leva masses, DeepMimic PD gains)
    convert.py   the one place Y-up kinematics meets Z-up MuJoCo (vectors, frames, poses <-> qpos/qvel)
    env.py       the MJX tracking environment (reset/step over a State pytree; DeepMimic reward)
    networks.py, losses.py, ppo.py   PPO in JAX (Brax's split); train.py its command line
    runtime.py   PhysicsController: the policy in C MuJoCo at 60 Hz on the CPU
    bench.py     throughput, latency and quality figures; cli.py  wiring for `anim`

Nothing here imports jax or mujoco at package import time.
"""
