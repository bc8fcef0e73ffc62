// P/Invoke declarations of the native core's C API (export/native/include/anim_native.h).
// Engine-free: compiles with Mono's mcs outside Unity (the test in Tests~ uses it).
using System;
using System.Runtime.InteropServices;

namespace Anim
{
    /// <summary>One tick of stick input, in the engine's WORLD axes (x, z of the
    /// Python engine: right-handed, +X the character's left). Use
    /// <see cref="UnityAxes.StickToEngine"/> to build it from Unity axes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct AnimInput
    {
        public float MoveX, MoveZ;
        public float FacingX, FacingZ;
        public int HasFacing;
        public int Run;
        public int Style;   // -1 keeps the current style
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct AnimTickInfo
    {
        public long Frame;
        public int Searched, Transitioned;
        public double Cost, LimiterShare;
        public int Style, Searches, Transitions;
    }

    public static class AnimNative
    {
        /// <summary>The native library: anim_native.dll / libanim_native.so / libanim_native.dylib.</summary>
        public const string Lib = "anim_native";

        public const int Ok = 0;

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        static extern IntPtr anim_last_error();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        static extern IntPtr anim_version();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_create_mm([MarshalAs(UnmanagedType.LPStr)] string path, out IntPtr controller);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_create_lmm([MarshalAs(UnmanagedType.LPStr)] string path, out IntPtr controller);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void anim_destroy(IntPtr controller);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_reset(IntPtr controller);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_step(IntPtr controller, ref AnimInput input, double dt);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_set_style(IntPtr controller, int style);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_num_joints(IntPtr controller);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        static extern IntPtr anim_joint_name(IntPtr controller, int joint);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_joint_parent(IntPtr controller, int joint);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_num_styles(IntPtr controller);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        static extern IntPtr anim_style_name(IntPtr controller, int style);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_get_pose(IntPtr controller, float[] rotations, float[] positions, byte[] contacts);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_get_global_pose(IntPtr controller, float[] rotations, float[] positions);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_get_info(IntPtr controller, out AnimTickInfo info);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_convert_unity(int n, float[] positions, float[] rotations, float[] outPositions,
                                                    float[] outRotations);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_stick_from_unity(float ux, float uz, out float x, out float z);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int anim_joint_index(IntPtr controller, [MarshalAs(UnmanagedType.LPStr)] string name);

        public static string LastError() { return Marshal.PtrToStringAnsi(anim_last_error()); }
        public static string Version() { return Marshal.PtrToStringAnsi(anim_version()); }
        public static string JointName(IntPtr c, int j) { return Marshal.PtrToStringAnsi(anim_joint_name(c, j)); }
        public static string StyleName(IntPtr c, int s) { return Marshal.PtrToStringAnsi(anim_style_name(c, s)); }

        /// <summary>Throws <see cref="AnimException"/> with the core's message for a negative code.</summary>
        public static int Check(int code)
        {
            if (code < 0) throw new AnimException(code, LastError());
            return code;
        }
    }

    public class AnimException : Exception
    {
        public readonly int Code;
        public AnimException(int code, string message) : base("anim native core error " + code + ": " + message)
        {
            Code = code;
        }
    }
}
