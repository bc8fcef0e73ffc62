// THE one place where this package converts between the engine's axes and Unity's.
//
// The engine (and the runtime files): right-handed, +Y up, character forward +Z,
// its left +X, metres, quaternions (w, x, y, z).
// Unity: left-handed, +Y up, +Z forward, +X right, metres, quaternions (x, y, z, w).
//
// The map is the reflection M = diag(-1, 1, 1): positions (x, y, z) -> (-x, y, z),
// rotations (w, x, y, z) -> (x, -y, -z, w) in Unity's order. It holds for local
// transforms too, so a bone hierarchy converts joint by joint. The pose itself is
// converted by the core's anim_convert_unity and the stick by anim_stick_from_unity
// (export/native/src/api.cpp, tested from Python): the formulas live in C.
namespace Anim
{
    public static class UnityAxes
    {
        /// <summary>Engine positions [n*3] and rotations [n*4] (w,x,y,z) to Unity's (x,y,z,w), in place into outs.</summary>
        public static void PoseToUnity(int n, float[] positions, float[] rotations, float[] outPositions,
                                       float[] outRotations)
        {
            AnimNative.Check(AnimNative.anim_convert_unity(n, positions, rotations, outPositions, outRotations));
        }

        /// <summary>A stick or facing direction on Unity's ground (x right, z forward) in the engine's axes.</summary>
        public static void StickToEngine(float unityX, float unityZ, out float engineX, out float engineZ)
        {
            AnimNative.Check(AnimNative.anim_stick_from_unity(unityX, unityZ, out engineX, out engineZ));
        }
    }
}
