// An animation graph node that plays motion matching (or learned motion matching)
// from a stick, on the native core. Thin: the tick, the search, the pose and the
// axis conversion are the core's (tested against the Python engine outside Unreal);
// this node maps bones by name, steps the core at 60 Hz and copies the pose.
#pragma once

#include "CoreMinimal.h"
#include "Animation/AnimNodeBase.h"
#include "Engine/EngineTypes.h"
#include "AnimNode_MotionMatching.generated.h"

struct AnimController;

USTRUCT(BlueprintInternalUseOnly)
struct ANIMMOTIONMATCHING_API FAnimNode_MotionMatching : public FAnimNode_Base
{
    GENERATED_BODY()

    /** The stick on the ground in Unreal's world axes: X forward, Y right, length <= 1. */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = Input, meta = (PinShownByDefault))
    FVector2D Stick = FVector2D::ZeroVector;

    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = Input, meta = (PinShownByDefault))
    bool bRun = false;

    /** Strafe: face FacingDirection (Unreal ground axes) while moving along Stick. */
    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = Input, meta = (PinHiddenByDefault))
    bool bStrafe = false;

    UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = Input, meta = (PinHiddenByDefault))
    FVector2D FacingDirection = FVector2D(1.0, 0.0);

    /** `anim export runtime-db` (.animrt) or `anim export runtime-lmm` (.animlmm); relative to the project's Content folder or absolute. */
    UPROPERTY(EditAnywhere, Category = Settings)
    FFilePath RuntimeFile;

    UPROPERTY(EditAnywhere, Category = Settings)
    bool bLearned = false;

    /** Skeleton bones whose names differ from the exported joint names: exported name -> bone name. */
    UPROPERTY(EditAnywhere, Category = Settings)
    TMap<FName, FName> BoneRenames;

    FAnimNode_MotionMatching() = default;
    FAnimNode_MotionMatching(const FAnimNode_MotionMatching&) = delete;
    FAnimNode_MotionMatching& operator=(const FAnimNode_MotionMatching&) = delete;
    virtual ~FAnimNode_MotionMatching();

    virtual void Initialize_AnyThread(const FAnimationInitializeContext& Context) override;
    virtual void CacheBones_AnyThread(const FAnimationCacheBonesContext& Context) override;
    virtual void Update_AnyThread(const FAnimationUpdateContext& Context) override;
    virtual void Evaluate_AnyThread(FPoseContext& Output) override;
    virtual void GatherDebugData(FNodeDebugData& DebugData) override;

private:
    AnimController* Controller = nullptr;
    int32 NumJoints = 0;
    TArray<FName> JointNames;                       // exported joint names, index = core joint
    TArray<FCompactPoseBoneIndex> CompactBones;     // per core joint; INDEX_NONE where the mesh lacks it
    TArray<float> Rotations, Positions, ScratchPos, ScratchRot;
    TArray<FTransform> Transforms;
    double Accumulator = 0.0;
    FString LastError;
};
