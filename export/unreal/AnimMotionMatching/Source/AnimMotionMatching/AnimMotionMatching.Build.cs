// The runtime module: the animation node over the native core's C API.
// The core (export/native, C++17, no engine headers) is built once with CMake for
// the target platform and its library dropped into ThirdParty/anim_native/lib/<Platform>/
// (see the plugin README); its header comes from ThirdParty/anim_native/include, or
// from the repository's export/native/include when the plugin is used in place.
using System.IO;
using UnrealBuildTool;

public class AnimMotionMatching : ModuleRules
{
    public AnimMotionMatching(ReadOnlyTargetRules Target) : base(Target)
    {
        PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
        PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "AnimGraphRuntime" });

        string ThirdParty = Path.Combine(PluginDirectory, "ThirdParty", "anim_native");
        string Include = Path.Combine(ThirdParty, "include");
        if (!File.Exists(Path.Combine(Include, "anim_native.h")))
            Include = Path.GetFullPath(Path.Combine(PluginDirectory, "..", "..", "native", "include"));
        PublicIncludePaths.Add(Include);

        string Lib = Path.Combine(ThirdParty, "lib", Target.Platform.ToString());
        if (Target.Platform == UnrealTargetPlatform.Win64)
        {
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "anim_native.lib"));
            PublicDelayLoadDLLs.Add("anim_native.dll");
            RuntimeDependencies.Add("$(BinaryOutputDir)/anim_native.dll", Path.Combine(Lib, "anim_native.dll"));
        }
        else if (Target.Platform == UnrealTargetPlatform.Mac)
        {
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "libanim_native.dylib"));
            RuntimeDependencies.Add("$(BinaryOutputDir)/libanim_native.dylib", Path.Combine(Lib, "libanim_native.dylib"));
        }
        else
        {
            PublicAdditionalLibraries.Add(Path.Combine(Lib, "libanim_native.so"));
            RuntimeDependencies.Add("$(BinaryOutputDir)/libanim_native.so", Path.Combine(Lib, "libanim_native.so"));
        }
    }
}
