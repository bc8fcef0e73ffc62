#!/usr/bin/env bash
# Train the sparse-VR diffusion and its MLP baseline side by side on one GPU,
# from a data pack (a GPU machine needs no mocap corpus):
#
#   python -m controllers.vr.data --pack out/vr/pack.npz          # where the corpus is (44 MB)
#   controllers/vr/weights/train_gpu.sh out/vr/pack.npz out/vr/gpu # on the GPU machine
#
# All three (the default diffusion, one 192 wide, the MLP) get the same budget:
# at most ITERATIONS (default 60000) batches of 256 windows within MINUTES
# (default 5.5) of wall clock, the learning-rate schedule paced to end by
# whichever comes first (`--paced`). DEVICE (default cuda) and PYTHON
# (default python3) and MODELS (a subset of the three) can be overridden; the
# CPU cores are shared out as batch workers. Writes OUT/{diffusion,diffusion192,mlp}/
# model.npz, their logs and summaries. MINUTES=0: no clock, exactly ITERATIONS
# batches (equal budgets for a fair pair); LEAVE_OUT_STYLE=STYLE: train without
# that style (controllers/vr/styles.py, the leave-one-style-out evaluation);
# FOOT_WEIGHT=W: the diffusions also learn the foot-slide loss (--foot-weight);
# ARGS="...": more `controllers.vr.train` flags for every model (e.g.
# ARGS="--speed-aug 0.2" or "--noise-aug 0.1", the augmentations).
set -euo pipefail
pack=${1:?usage: train_gpu.sh PACK OUT [ITERATIONS]}
out=${2:?usage: train_gpu.sh PACK OUT [ITERATIONS]}
its=${3:-60000}
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}
mkdir -p "$out"
common=(--data "$pack" --device "$dev" --batch 256 --iterations "$its" --val-every 1000 --quiet --seed 0)
if [ -n "${ARGS:-}" ]; then read -r -a extra <<<"$ARGS"; common+=("${extra[@]}"); fi
[ "${MINUTES:-5.5}" = 0 ] || common+=(--minutes "${MINUTES:-5.5}" --paced)
[ -z "${LEAVE_OUT_STYLE:-}" ] || common+=(--leave-out-style "$LEAVE_OUT_STYLE")
foot=${FOOT_WEIGHT:+--foot-weight $FOOT_WEIGHT}
declare -A args=([diffusion]="--model diffusion $foot" [diffusion192]="--model diffusion --latent 192 $foot"
                 [mlp]="--model mlp")
models=(${MODELS:-diffusion diffusion192 mlp})
workers=$(( ($(nproc) - ${#models[@]}) / ${#models[@]} ))
for m in "${models[@]}"; do
    $py -m controllers.vr.train ${args[$m]} --out "$out/$m" "${common[@]}" --workers $workers >"$out/$m.log" 2>&1 &
done
fail=0
for job in $(jobs -p); do wait "$job" || fail=1; done
tail -n 2 "$out"/*.log
exit $fail
