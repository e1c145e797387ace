"""2D rewards on rendered views beside RewardCS (the paper's "Reward3D + RewardCS" rows).

    branch = build_reward_2d(Reward2DConfig(name="imagereward", checkpoint="weights/imagereward"), "a chair", "cpu")
    r = branch(images)              # images (B, H, W, 3) in [0, 1] -> mean reward (), differentiable

ImageReward and DreamReward's Reward3D (``blip_reward.py``), their branch in a generation step
(``branch.py``), the ``reward_2d`` config (``config.py``) and a tiny model for tests (``tiny.py``).
"""

from dreamcs.generate.reward2d.config import REWARD_2D_NAMES, Reward2DConfig

__all__ = ["REWARD_2D_NAMES", "Reward2DConfig", "build_reward_2d", "Reward2DBranch", "BlipReward",
           "BlipRewardConfig", "convert_blip_reward_checkpoint", "save_tiny_blip_reward"]


def __getattr__(name: str):  # the torch / transformers parts load on first use
    if name in ("build_reward_2d", "Reward2DBranch"):
        from dreamcs.generate.reward2d import branch

        return getattr(branch, name)
    if name in ("BlipReward", "BlipRewardConfig", "convert_blip_reward_checkpoint"):
        from dreamcs.generate.reward2d import blip_reward

        return getattr(blip_reward, name)
    if name == "save_tiny_blip_reward":
        from dreamcs.generate.reward2d.tiny import save_tiny_blip_reward

        return save_tiny_blip_reward
    raise AttributeError(name)
