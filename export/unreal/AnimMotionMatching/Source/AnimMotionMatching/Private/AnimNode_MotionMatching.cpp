#include "AnimNode_MotionMatching.h"

#include "Animation/AnimInstanceProxy.h"
#include "Misc/Paths.h"
#include "UnrealAxes.h"
#include "anim_native.h"

static constexpr double AnimTick = 1.0 / 60.0;   // the core ticks at the data's 60 Hz

FAnimNode_MotionMatching::~FAnimNode_MotionMatching()
{
    if (Controller) anim_destroy(Controller);
}

void FAnimNode_MotionMatching::Initialize_AnyThread(const FAnimationInitializeContext& Context)
{
    FAnimNode_Base::Initialize_AnyThread(Context);
    if (Controller) { anim_destroy(Controller); Controller = nullptr; }
    FString Path = RuntimeFile.FilePath;
    if (FPaths::IsRelative(Path)) Path = FPaths::Combine(FPaths::ProjectContentDir(), Path);
    const int Code = bLearned ? anim_create_lmm(TCHAR_TO_UTF8(*Path), &Controller)
                              : anim_create_mm(TCHAR_TO_UTF8(*Path), &Controller);
    if (Code != ANIM_OK)
    {
        LastError = UTF8_TO_TCHAR(anim_last_error());
        UE_LOG(LogAnimation, Error, TEXT("Motion Matching node: %s"), *LastError);
        Controller = nullptr;
        return;
    }
    NumJoints = anim_num_joints(Controller);
    JointNames.SetNum(NumJoints);
    for (int32 J = 0; J < NumJoints; ++J) JointNames[J] = FName(UTF8_TO_TCHAR(anim_joint_name(Controller, J)));
    Rotations.SetNumZeroed(4 * NumJoints);
    Positions.SetNumZeroed(3 * NumJoints);
    Accumulator = 0.0;
}

void FAnimNode_MotionMatching::CacheBones_AnyThread(const FAnimationCacheBonesContext& Context)
{
    // bone mapping: each exported joint to the mesh bone of the same name (or its rename)
    const FBoneContainer& Bones = Context.AnimInstanceProxy->GetRequiredBones();
    CompactBones.SetNum(NumJoints);
    for (int32 J = 0; J < NumJoints; ++J)
    {
        const FName* Renamed = BoneRenames.Find(JointNames[J]);
        const int32 MeshIndex = Bones.GetPoseBoneIndexForBoneName(Renamed ? *Renamed : JointNames[J]);
        CompactBones[J] = MeshIndex == INDEX_NONE ? FCompactPoseBoneIndex(INDEX_NONE)
                                                  : Bones.MakeCompactPoseIndex(FMeshPoseBoneIndex(MeshIndex));
    }
}

void FAnimNode_MotionMatching::Update_AnyThread(const FAnimationUpdateContext& Context)
{
    GetEvaluateGraphExposedInputs().Execute(Context);
    if (!Controller) return;
    AnimInput In = {};
    const FVector2D S = Stick.GetSafeNormal() * FMath::Min(Stick.Size(), 1.0);
    AnimUnrealAxes::StickToEngine(S, In.move_x, In.move_z);
    if (bStrafe)
    {
        AnimUnrealAxes::StickToEngine(FacingDirection.GetSafeNormal(), In.facing_x, In.facing_z);
        In.has_facing = 1;
    }
    In.run = bRun ? 1 : 0;
    In.style = -1;
    Accumulator += Context.GetDeltaTime();
    while (Accumulator >= AnimTick)
    {
        anim_step(Controller, &In, AnimTick);
        Accumulator -= AnimTick;
    }
}

void FAnimNode_MotionMatching::Evaluate_AnyThread(FPoseContext& Output)
{
    Output.ResetToRefPose();
    if (!Controller) return;
    anim_get_pose(Controller, Rotations.GetData(), Positions.GetData(), nullptr);
    AnimUnrealAxes::PoseToUnreal(NumJoints, Positions.GetData(), Rotations.GetData(), ScratchPos, ScratchRot,
                                 Transforms);
    for (int32 J = 0; J < NumJoints; ++J)
        if (CompactBones.IsValidIndex(J) && CompactBones[J].GetInt() != INDEX_NONE)
            Output.Pose[CompactBones[J]] = Transforms[J];
}

void FAnimNode_MotionMatching::GatherDebugData(FNodeDebugData& DebugData)
{
    AnimTickInfo Info = {};
    if (Controller) anim_get_info(Controller, &Info);
    DebugData.AddDebugItem(FString::Printf(TEXT("MotionMatching(frame %lld, searches %d, transitions %d%s%s)"),
                                           (long long)Info.frame, Info.searches, Info.transitions,
                                           LastError.IsEmpty() ? TEXT("") : TEXT(", error: "), *LastError));
}
