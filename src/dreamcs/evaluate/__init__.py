"""Evaluation on a prompt set: studies (run every prompt x seed, shard, merge), per-asset metrics
(CP with CLIP, GA with a separately trained RewardCS, geometry defects, a Janus heuristic; optional
IR with ImageReward, VR with VisionReward's checklist on a local VLM, a VLM judge), the
paper-layout table, and the Janus benchmark against ground-truth meshes.

    dreamcs evaluate run --prompts prompts.txt --config dmtet-sd --out study/base --seeds 0,1,2
    dreamcs evaluate run --prompts prompts.txt --config dmtet-sd --out study/ours --reward runs/reward
    dreamcs evaluate score study/base study/ours --clip openai/clip-vit-base-patch32 --ga-reward runs/reward-seed1

Heavy pieces (CLIP, RewardCS, rendering) are imported where used.
"""

from dreamcs.evaluate.prompts import PromptFileError, load_prompts, prompt_slug, run_name

__all__ = ["PromptFileError", "load_prompts", "prompt_slug", "run_name"]
