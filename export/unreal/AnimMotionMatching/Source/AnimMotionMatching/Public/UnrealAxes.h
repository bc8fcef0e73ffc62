// THE one place where this plugin converts between the engine's axes and Unreal's.
//
// The engine (and the runtime files): right-handed, +Y up, character forward +Z,
// its left +X, metres, quaternions (w, x, y, z).
// Unreal: left-handed, +Z up, +X forward, +Y right, centimetres, FQuat (X, Y, Z, W).
//
// The map is a reflection M: position (x, y, z) -> 100 * (z, -x, y) cm, rotation
// (w, x, y, z) -> FQuat(-z, x, -y, w); a stick on Unreal's ground (X forward,
// Y right) -> the engine's (x, z) = (-Y, X). The formulas live in the core
// (anim_convert_unreal, anim_stick_from_unreal in export/native/src/api.cpp),
// tested from Python (tests/test_native.py); these helpers only repack the
// results into Unreal's types.
#pragma once

#include "CoreMinimal.h"
#include "anim_native.h"

namespace AnimUnrealAxes
{
    /** Engine transforms (n of them, positions [n*3] metres, rotations [n*4] w,x,y,z) to Unreal FTransforms. */
    inline void PoseToUnreal(int32 N, const float* Positions, const float* Rotations, TArray<float>& ScratchPos,
                             TArray<float>& ScratchRot, TArray<FTransform>& Out)
    {
        ScratchPos.SetNumUninitialized(3 * N, false);
        ScratchRot.SetNumUninitialized(4 * N, false);
        anim_convert_unreal(N, Positions, Rotations, ScratchPos.GetData(), ScratchRot.GetData());
        Out.SetNum(N, false);
        for (int32 J = 0; J < N; ++J)
        {
            const float* P = &ScratchPos[3 * J];
            const float* R = &ScratchRot[4 * J];
            Out[J] = FTransform(FQuat(R[0], R[1], R[2], R[3]), FVector(P[0], P[1], P[2]), FVector::OneVector);
        }
    }

    /** A stick on Unreal's ground (X forward, Y right; length <= 1) as the engine's world (x, z). */
    inline void StickToEngine(const FVector2D& Stick, float& OutX, float& OutZ)
    {
        anim_stick_from_unreal(float(Stick.X), float(Stick.Y), &OutX, &OutZ);
    }
}
