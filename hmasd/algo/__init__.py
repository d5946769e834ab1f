"""HMASD in PyTorch: the skill coordinator, skill discoverer, discriminators and PPO (needs the train extra)."""
