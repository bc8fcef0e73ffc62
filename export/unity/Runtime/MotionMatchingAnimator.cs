// The Unity component: drives a Transform hierarchy (an imported character, e.g.
// the glTF of `anim export gltf`) from a stick at a fixed 60 Hz. Thin on purpose:
// everything beneath it (AnimCharacter, AnimNative, UnityAxes) compiles and is
// tested outside Unity; this file only compiles inside Unity (UNITY_2019_1_OR_NEWER)
// and is listed in the package README as tested only in the editor.
#if UNITY_2019_1_OR_NEWER
using System.Collections.Generic;
using UnityEngine;

namespace Anim
{
    public class MotionMatchingAnimator : MonoBehaviour
    {
        [Tooltip("Runtime file from `anim export runtime-db` (.animrt) or `anim export runtime-lmm` (.animlmm), " +
                 "relative to StreamingAssets or absolute")]
        public string runtimeFile = "locomotion-normal.animrt";
        public bool learned = false;
        [Tooltip("Root of the imported skeleton; bones are found below it by the exported joint names")]
        public Transform skeletonRoot;
        [Tooltip("Optional: bone names that differ from the exported joint names (exported -> yours)")]
        public List<string> renameFrom = new List<string>(), renameTo = new List<string>();
        public string horizontalAxis = "Horizontal", verticalAxis = "Vertical", runButton = "Fire3";
        [Tooltip("Stick relative to this camera's ground heading (none: world axes)")]
        public Transform cameraTransform;

        AnimCharacter character;
        Transform[] bones;
        double accumulator;
        const double Tick = 1.0 / 60.0;

        void Start()
        {
            string path = System.IO.Path.IsPathRooted(runtimeFile)
                ? runtimeFile : System.IO.Path.Combine(Application.streamingAssetsPath, runtimeFile);
            character = new AnimCharacter(path, learned);
            bones = new Transform[character.NumJoints];
            var all = new Dictionary<string, Transform>();
            foreach (var t in (skeletonRoot ? skeletonRoot : transform).GetComponentsInChildren<Transform>())
                if (!all.ContainsKey(t.name)) all[t.name] = t;
            for (int j = 0; j < character.NumJoints; ++j)
            {
                string name = character.JointNames[j];
                int k = renameFrom.IndexOf(name);
                if (k >= 0 && k < renameTo.Count) name = renameTo[k];
                Transform b;
                if (all.TryGetValue(name, out b)) bones[j] = b;
                else Debug.LogWarning("MotionMatchingAnimator: no bone named '" + name + "' under " +
                                      (skeletonRoot ? skeletonRoot.name : name) + "; that joint is not driven");
            }
        }

        void Update()
        {
            Vector2 stick = new Vector2(Input.GetAxis(horizontalAxis), Input.GetAxis(verticalAxis));
            stick = Vector2.ClampMagnitude(stick, 1f);
            Vector3 move = new Vector3(stick.x, 0f, stick.y);
            if (cameraTransform)
            {
                Vector3 f = Vector3.ProjectOnPlane(cameraTransform.forward, Vector3.up).normalized;
                move = Quaternion.LookRotation(f, Vector3.up) * move;
            }
            bool run = Input.GetButton(runButton);
            accumulator += Time.deltaTime;
            while (accumulator >= Tick)
            {
                character.StepUnity(move.x, move.z, false, 0f, 0f, run, -1, Tick);
                accumulator -= Tick;
            }
            Apply();
        }

        void Apply()
        {
            float[] r = character.UnityLocalRotations, p = character.UnityLocalPositions;
            for (int j = 0; j < bones.Length; ++j)
            {
                if (!bones[j]) continue;
                bones[j].localRotation = new Quaternion(r[4 * j], r[4 * j + 1], r[4 * j + 2], r[4 * j + 3]);
                bones[j].localPosition = new Vector3(p[3 * j], p[3 * j + 1], p[3 * j + 2]);
            }
        }

        void OnDestroy()
        {
            if (character != null) character.Dispose();
        }
    }
}
#endif
