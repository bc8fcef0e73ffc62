// An engine-free wrapper of one native character: create from a runtime file,
// step with the stick, read the pose in Unity's axes. No allocation per tick.
// (The MonoBehaviour that moves Transforms, MotionMatchingAnimator.cs, is a thin
// layer over this class.)
using System;

namespace Anim
{
    public sealed class AnimCharacter : IDisposable
    {
        IntPtr handle;
        public readonly int NumJoints;
        public readonly string[] JointNames;
        public readonly int[] Parents;
        public readonly string[] Styles;
        // the last pose, engine axes: local rotations (w,x,y,z), local positions; global positions
        public readonly float[] LocalRotations, LocalPositions, GlobalRotations, GlobalPositions;
        // the same in Unity's axes: rotations (x,y,z,w), positions
        public readonly float[] UnityLocalRotations, UnityLocalPositions, UnityGlobalRotations, UnityGlobalPositions;
        public readonly byte[] Contacts = new byte[2];
        AnimInput input;

        /// <summary>learned = false: motion matching over a runtime database (.animrt);
        /// true: learned motion matching (.animlmm).</summary>
        public AnimCharacter(string runtimeFile, bool learned = false)
        {
            AnimNative.Check(learned ? AnimNative.anim_create_lmm(runtimeFile, out handle)
                                     : AnimNative.anim_create_mm(runtimeFile, out handle));
            NumJoints = AnimNative.Check(AnimNative.anim_num_joints(handle));
            JointNames = new string[NumJoints];
            Parents = new int[NumJoints];
            for (int j = 0; j < NumJoints; ++j)
            {
                JointNames[j] = AnimNative.JointName(handle, j);
                Parents[j] = AnimNative.anim_joint_parent(handle, j);
            }
            Styles = new string[AnimNative.anim_num_styles(handle)];
            for (int s = 0; s < Styles.Length; ++s) Styles[s] = AnimNative.StyleName(handle, s);
            LocalRotations = new float[4 * NumJoints];
            LocalPositions = new float[3 * NumJoints];
            GlobalRotations = new float[4 * NumJoints];
            GlobalPositions = new float[3 * NumJoints];
            UnityLocalRotations = new float[4 * NumJoints];
            UnityLocalPositions = new float[3 * NumJoints];
            UnityGlobalRotations = new float[4 * NumJoints];
            UnityGlobalPositions = new float[3 * NumJoints];
            Fetch();
        }

        public int StyleIndex(string style)
        {
            return style == null ? -1 : Array.IndexOf(Styles, style);
        }

        public void Reset()
        {
            AnimNative.Check(AnimNative.anim_reset(handle));
            Fetch();
        }

        /// <summary>One tick. move, facing: on Unity's ground (x right, z forward), stick length at most 1;
        /// hasFacing: strafe facing that way; style: -1 keeps the current one.</summary>
        public void StepUnity(float moveX, float moveZ, bool hasFacing, float facingX, float facingZ, bool run,
                              int style, double dt)
        {
            UnityAxes.StickToEngine(moveX, moveZ, out input.MoveX, out input.MoveZ);
            UnityAxes.StickToEngine(facingX, facingZ, out input.FacingX, out input.FacingZ);
            input.HasFacing = hasFacing ? 1 : 0;
            input.Run = run ? 1 : 0;
            input.Style = style;
            Step(ref input, dt);
        }

        /// <summary>One tick with the input already in the engine's axes.</summary>
        public void Step(ref AnimInput engineInput, double dt)
        {
            AnimNative.Check(AnimNative.anim_step(handle, ref engineInput, dt));
            Fetch();
        }

        public AnimTickInfo Info()
        {
            AnimTickInfo info;
            AnimNative.Check(AnimNative.anim_get_info(handle, out info));
            return info;
        }

        void Fetch()
        {
            AnimNative.Check(AnimNative.anim_get_pose(handle, LocalRotations, LocalPositions, Contacts));
            AnimNative.Check(AnimNative.anim_get_global_pose(handle, GlobalRotations, GlobalPositions));
            UnityAxes.PoseToUnity(NumJoints, LocalPositions, LocalRotations, UnityLocalPositions, UnityLocalRotations);
            UnityAxes.PoseToUnity(NumJoints, GlobalPositions, GlobalRotations, UnityGlobalPositions,
                                  UnityGlobalRotations);
        }

        public void Dispose()
        {
            if (handle != IntPtr.Zero)
            {
                AnimNative.anim_destroy(handle);
                handle = IntPtr.Zero;
            }
        }

        ~AnimCharacter() { Dispose(); }
    }
}
