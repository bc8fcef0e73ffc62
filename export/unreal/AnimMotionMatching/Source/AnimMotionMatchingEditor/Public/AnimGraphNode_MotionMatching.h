#pragma once

#include "CoreMinimal.h"
#include "AnimGraphNode_Base.h"
#include "AnimNode_MotionMatching.h"
#include "AnimGraphNode_MotionMatching.generated.h"

UCLASS()
class ANIMMOTIONMATCHINGEDITOR_API UAnimGraphNode_MotionMatching : public UAnimGraphNode_Base
{
    GENERATED_BODY()

public:
    UPROPERTY(EditAnywhere, Category = Settings)
    FAnimNode_MotionMatching Node;

    virtual FText GetNodeTitle(ENodeTitleType::Type TitleType) const override
    {
        return NSLOCTEXT("AnimMotionMatching", "Title", "Motion Matching (anim native core)");
    }
    virtual FText GetTooltipText() const override
    {
        return NSLOCTEXT("AnimMotionMatching", "Tooltip",
                         "Plays motion matching or learned motion matching from a stick (X forward, Y right).");
    }
    virtual FString GetNodeCategory() const override { return TEXT("Motion Matching"); }
};
