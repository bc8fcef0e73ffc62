// Runs stick input through the package's P/Invoke layer (AnimCharacter) against
// the built native core and writes the poses it shows in Unity's axes, for
// tests/test_unity.py to compare with the Python engine's. Outside Unity: built
// with Mono's mcs, run with mono (Unity ignores folders ending in ~).
//
//   mono ParityTest.exe RUNTIME_FILE INPUTS OUT [lmm]
//
// INPUTS: int32 count, then count AnimInput structs (engine axes; bench/native.py's
// format). The test feeds them through StepUnity, so the stick also crosses the
// Unity axis conversion. OUT: int32 ticks + 1, int32 joints, then per pose (the
// reset one first) int64 frame and joints x 3 float32 global positions in Unity axes.
using System;
using System.IO;

namespace Anim.Tests
{
    public static class ParityTest
    {
        public static int Main(string[] args)
        {
            if (args.Length < 3)
            {
                Console.Error.WriteLine("usage: ParityTest.exe RUNTIME_FILE INPUTS OUT [lmm]");
                return 2;
            }
            bool learned = args.Length > 3 && args[3] == "lmm";
            AnimInput[] inputs;
            using (var r = new BinaryReader(File.OpenRead(args[1])))
            {
                int n = r.ReadInt32();
                inputs = new AnimInput[n];
                for (int i = 0; i < n; ++i)
                {
                    inputs[i].MoveX = r.ReadSingle(); inputs[i].MoveZ = r.ReadSingle();
                    inputs[i].FacingX = r.ReadSingle(); inputs[i].FacingZ = r.ReadSingle();
                    inputs[i].HasFacing = r.ReadInt32(); inputs[i].Run = r.ReadInt32(); inputs[i].Style = r.ReadInt32();
                }
            }
            try
            {
                using (var c = new AnimCharacter(args[0], learned))
                using (var w = new BinaryWriter(File.Create(args[2])))
                {
                    w.Write(inputs.Length + 1);
                    w.Write(c.NumJoints);
                    Write(w, c);
                    foreach (var x in inputs)
                    {
                        // the stick as a Unity script has it (x right), back through UnityAxes
                        c.StepUnity(-x.MoveX, x.MoveZ, x.HasFacing != 0, -x.FacingX, x.FacingZ, x.Run != 0, x.Style,
                                    1.0 / 60.0);
                        Write(w, c);
                    }
                }
            }
            catch (AnimException e)
            {
                Console.Error.WriteLine(e.Message);
                return 1;
            }
            return 0;
        }

        static void Write(BinaryWriter w, AnimCharacter c)
        {
            w.Write(c.Info().Frame);
            foreach (float v in c.UnityGlobalPositions) w.Write(v);
        }
    }
}
