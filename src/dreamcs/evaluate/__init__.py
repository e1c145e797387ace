"""Evaluation on a prompt set: studies (run every prompt x seed, shard, merge), per-asset metrics
(CP with CLIP, GA with a separately trained RewardCS, geometry defects, a Janus heuristic; optional
IR with ImageReward, VR with VisionReward's checklist on a local VLM, a VLM judge), the
paper-layout table, the Janus benchmark against ground-truth meshes, and the paired comparison of
two variants with bootstrap intervals (``compare``, ``bootstrap``).

    dreamcs evaluate run --prompts prompts.txt --config dmtet-sd --out study/base --seeds 0,1,2
    dreamcs evaluate run --prompts prompts.txt --config dmtet-sd --out study/ours --reward runs/reward
    dreamcs evaluate score study/base study/ours --clip openai/clip-vit-base-patch32 --ga-reward runs/reward-seed1
    dreamcs evaluate janus --prompts prompts.txt --runs study/base --runs study/ours --gt gt.json
    dreamcs evaluate compare study/base --out study/compare     # B - A per prompt, bootstrap intervals

Heavy pieces (CLIP, RewardCS, rendering) are imported where used.
"""

from dreamcs.evaluate.prompts import PromptFileError, load_prompts, prompt_slug, run_name

__all__ = ["PromptFileError", "load_prompts", "prompt_slug", "run_name"]
