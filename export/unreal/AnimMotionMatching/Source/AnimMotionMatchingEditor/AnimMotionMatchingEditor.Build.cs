// The editor-only module: the animation graph node's editor class.
using UnrealBuildTool;

public class AnimMotionMatchingEditor : ModuleRules
{
    public AnimMotionMatchingEditor(ReadOnlyTargetRules Target) : base(Target)
    {
        PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
        PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "AnimGraph",
                                                            "BlueprintGraph", "AnimMotionMatching" });
    }
}
